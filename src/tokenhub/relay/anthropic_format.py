"""Speaking Anthropic Messages to a client while the gateway works in OpenAI chat shape.

The INBOUND direction of ``POST /v1/messages`` for models that are not served natively by an
Anthropic upstream: the client's Messages request becomes an OpenAI chat payload, and the OpenAI
answer (a ``chat.completion`` or its chunks) becomes an Anthropic ``Message`` or Anthropic's SSE
event sequence. Pure functions and one stream writer; no I/O. (The OUTBOUND direction — OpenAI
chat spoken to an Anthropic upstream — is :mod:`tokenhub.providers.anthropic_protocol`; both use the
same conventions for reasoning state, so a conversation can move between them.)

Request (:func:`translate_messages_request`, :func:`to_openai_request`)
  * Refused with ``InvalidRequest`` (``param`` names the field), as the API would: a body that is
    not an object; ``model`` missing or not a non-empty string; ``max_tokens`` missing or not a
    non-negative integer; ``messages`` not a non-empty list; a role other than
    user/assistant/system; content that is neither a string nor a list of blocks; a block of unknown type or wrong shape, or in a role that cannot carry it;
    ``temperature``/``top_p`` outside [0, 1]; ``stop_sequences`` not a list of strings; a custom
    tool without ``name``/``input_schema``; a ``tool_choice`` of unknown type or naming no tool;
    ``thinking`` of unknown type or with ``budget_tokens`` < 1024; an unknown
    ``output_config.effort``; an ``output_config.format`` other than ``json_schema``.
  * Valid for Anthropic but impossible to hand to another upstream (``Untranslatable``, a 400
    subclass): Files API ``file`` image/document sources, PDF ``url`` sources, ``max_tokens: 0``.
    Raised by default; ``lenient=True`` collects them in ``Translation.unsupported`` instead (the
    part becomes placeholder text, max_tokens 1) so a request bound for a native Anthropic
    upstream, which can take them, is not refused: call ``Translation.require_translatable()``
    once the route is known not to be native.
  * ``system`` (string or text blocks; blocks joined with a blank line) -> one leading system
    message; a ``system``-role message inside ``messages`` -> a system message in place. Claude
    Code's per-request ``x-anthropic-billing-header: ...`` attribution line is removed: its nonce
    changes every turn and would defeat the upstreams' prefix caching.
  * User turns: ``tool_result`` blocks -> one ``tool`` message each, in order, BEFORE the rest of
    the turn (string content, or text blocks joined by newlines; ``is_error`` -> an ``"Error: "``
    prefix). Images and PDFs inside a tool result cannot live in a tool message: they follow in
    the turn's user message. Text -> text (a turn of text only becomes one string, blocks joined by
    a blank line); images: base64 -> a data-URL ``image_url``, url -> ``image_url``; documents:
    base64 PDF -> a ``file`` part (``file_data`` data URL, ``filename`` from ``title``), plain
    text / ``content`` sources -> text (and images); ``search_result`` -> text. Empty text blocks are
    dropped; a turn left empty is dropped (a conversation left with no turn at all is refused).
  * Assistant turns: text blocks -> ``content`` (joined by a blank line; null when there is none
    and tools were called); ``tool_use`` -> ``tool_calls`` (arguments = compact JSON of ``input``);
    signed ``thinking`` -> ``reasoning_details`` ``{"type": "reasoning.text", "text", "signature",
    "format": "anthropic-claude-v1", "index"}`` and its text in ``reasoning_content``; thinking with
    an empty signature (what :func:`to_anthropic_message` gives for other vendors' reasoning) ->
    ``reasoning_content`` only; ``redacted_thinking`` -> ``{"type": "reasoning.encrypted", "data",
    ...}``. Server-tool blocks (``server_tool_use``, ``*_tool_result``, ``mcp_tool_*``,
    ``container_upload``) are dropped.
  * Tools: custom tools -> function tools (``parameters`` = ``input_schema`` unchanged; ``strict``
    dropped: OpenAI's strict mode has stricter schema rules). Names longer than OpenAI's 64
    characters are shortened deterministically (:func:`upstream_tool_name`) everywhere they appear;
    ``Translation.tool_names`` maps them back and the response side restores them. Anthropic server
    tools (any other ``type``: ``web_search_*``, ``web_fetch_*``, ``bash_*``, ``text_editor_*``,
    ``computer_*``, ``code_execution_*``, ``memory_*``, ``tool_search_*``, ``mcp_toolset`` ...) are
    dropped and listed in ``Translation.dropped_tools``. ``tool_choice`` auto/any/tool/none ->
    auto/required/named function/none (omitted when no tool is left, or when it names a dropped
    server tool); ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``.
  * ``max_tokens``, ``temperature``, ``top_p``; ``stop_sequences`` -> ``stop``; ``stream`` -> ``stream``
    + ``stream_options.include_usage``; ``metadata.user_id`` -> ``user`` (longer than 64 characters:
    its SHA-256 hex, stable per user).
  * Reasoning: ``output_config.effort`` (low/medium/high; xhigh/max -> high) wins; otherwise
    ``thinking: {"type": "enabled", budget_tokens}`` -> ``reasoning_effort`` by budget: < 4096
    low, < 16384 medium, else high (Claude Code's think / think hard / ultrathink budgets of
    4000 / 10000 / 31999 land on low / medium / high). ``adaptive`` and ``between_tools`` without
    an effort, and ``disabled``, set nothing: the upstream's default applies.
  * ``output_config.format`` (or the deprecated top-level ``output_format``) ``json_schema`` ->
    ``response_format: {"type": "json_schema", "json_schema": {"name": "output", "schema"}}``.
  * Dropped, listed in ``Translation.dropped_fields`` when present at the top level: every field not
    named above — ``top_k``, ``cache_control``, ``context_management``, ``container``,
    ``mcp_servers``, ``service_tier``, ``inference_geo``, ``speed``, ``diagnostics``, ... Block-level
    ``cache_control``, ``citations``, document ``context`` and image ``transformations`` are dropped
    silently.

Response (:func:`to_anthropic_message`): content in Anthropic's order — thinking (from
``reasoning_details``, else one block from ``reasoning_content``/``reasoning``), text (only when not
blank; a ``refusal`` stands in when there is no text), ``tool_use`` (ids made
``^[a-zA-Z0-9_-]+$``-safe as the outbound adapter does, shortened names restored, input parsed:
anything that is not a JSON object -> ``{}``). Thinking without a signature (DeepSeek, Qwen, ...)
is emitted with ``"signature": ""``: the SDK types require the field, and the empty value marks it
as not replayable — sent back, it becomes ``reasoning_content`` only, never a signed block. Entries
of ``reasoning_details`` in another vendor's ``format`` contribute no signature or redacted block.
stop_reason: stop -> end_turn (``stop_sequence`` when the upstream named the matched stop string,
as vLLM does in ``stop_reason``), length -> max_tokens, tool_calls -> tool_use, content_filter ->
refusal; a stop with tool calls is tool_use, a tool_calls finish without any is end_turn.

Usage (:func:`anthropic_usage`): Anthropic's additive cache fields from OpenAI's inclusive ones
(input = prompt - cache read - cache write); ``output_tokens_details.thinking_tokens`` when the
upstream reported reasoning tokens; ``server_tool_use`` (``{"web_search_requests": N, ...}``) when
it reported server-tool uses.

Stream: see :class:`AnthropicStreamWriter`. Errors: :func:`error_body` / :func:`error_type`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

from tokenhub.billing.cost import Usage
from tokenhub.billing.estimate import estimate_tokens
from tokenhub.errors import InvalidRequest
from tokenhub.providers.anthropic_protocol import REASONING_FORMAT, tool_use_id

OPENAI_TOOL_NAME_MAX = 64
USER_ID_MAX = 64
BILLING_HEADER_PREFIX = "x-anthropic-billing-header"
TOOL_ERROR_PREFIX = "Error: "
JSON_SCHEMA_NAME = "output"
# thinking.budget_tokens -> reasoning_effort: below 4096 low, below 16384 medium, else high.
BUDGET_EFFORT = ((4096, "low"), (16384, "medium"))
MIN_THINKING_BUDGET = 1024
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}

# Request fields this module translates; any other top-level field is dropped and reported.
HANDLED_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "output_format",
    }
)
# Anthropic server-tool content blocks: meaningful only to Anthropic, dropped for other upstreams.
SERVER_BLOCKS = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "mcp_tool_use",
        "mcp_tool_result",
    }
)

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",  # Anthropic's docs; not in the SDK's ErrorType list, which maps by status
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# --------------------------------------------------------------------------- request


@dataclass(frozen=True)
class Translation:
    """An Anthropic Messages request in OpenAI chat shape, and what could not come along."""

    payload: dict[str, Any]
    dropped_tools: list[str] = field(default_factory=list)  # Anthropic server tools, by name (or type)
    dropped_fields: list[str] = field(default_factory=list)  # top-level fields with no equivalent, sorted
    tool_names: dict[str, str] = field(default_factory=dict)  # name sent upstream -> the client's name (shortened only)
    # lenient=True only: valid Anthropic input this translation could not carry (see ``Untranslatable``)
    unsupported: list[Untranslatable] = field(default_factory=list)

    def require_translatable(self) -> None:
        """Raise the first ``Untranslatable`` problem: call it once the route is known not to be native."""
        if self.unsupported:
            raise self.unsupported[0]


class Untranslatable(InvalidRequest):
    """Valid for Anthropic, impossible to hand to another upstream: a Files API ``file`` source, a
    PDF ``url`` source, ``max_tokens: 0`` (cache pre-warm). With ``lenient=True`` these are collected
    in ``Translation.unsupported`` (the part becomes a placeholder text, max_tokens 1) instead of
    raised, so a request bound for a native Anthropic upstream is not refused by the translation."""

    code = "unsupported_for_model"


def _untranslatable(sink: list[Untranslatable] | None, message: str, param: str) -> None:
    err = Untranslatable(message, param=param)
    if sink is None:
        raise err
    sink.append(err)


def to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI chat payload for an Anthropic Messages request (see the module notes)."""
    return translate_messages_request(body).payload


def translate_messages_request(body: Any, *, lenient: bool = False) -> Translation:
    """The translation and its notes; ``lenient`` collects ``Untranslatable`` problems instead of raising."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model: a model id (non-empty string) is required", param="model")
    if "max_tokens" not in body:
        raise InvalidRequest("max_tokens: Field required", param="max_tokens")
    sink: list[Untranslatable] | None = [] if lenient else None
    max_tokens = body.get("max_tokens")
    if not _is_int(max_tokens) or max_tokens < 0:
        raise InvalidRequest("max_tokens: must be a non-negative integer", param="max_tokens")
    if max_tokens == 0:
        _untranslatable(sink, "max_tokens: 0 (cache pre-warming) is only supported by Anthropic models", "max_tokens")
        max_tokens = 1

    names: dict[str, str] = {}  # client name -> upstream name
    tools, dropped_tools = _tools(body.get("tools"), names)
    payload: dict[str, Any] = {"model": model}

    messages: list[dict[str, Any]] = []
    system = _system_text(body.get("system"), "system", strip_billing=True)
    if system:
        messages.append({"role": "system", "content": system})
    messages += _messages(body.get("messages"), names, sink)
    if not any(m["role"] != "system" for m in messages):
        raise InvalidRequest("messages: all messages have empty content", param="messages")
    payload["messages"] = messages
    payload["max_tokens"] = max_tokens

    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_number(value) or not 0 <= value <= 1:
            raise InvalidRequest(f"{name}: must be a number between 0 and 1", param=name)
        payload[name] = value

    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest("stop_sequences: must be a list of strings", param="stop_sequences")
        if stops:
            payload["stop"] = list(stops)

    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("stream: must be a boolean", param="stream")
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}

    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata: must be an object", param="metadata")
        user_id = metadata.get("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise InvalidRequest("metadata.user_id: must be a string", param="metadata.user_id")
        if user_id:
            payload["user"] = user_id if len(user_id) <= USER_ID_MAX else hashlib.sha256(user_id.encode()).hexdigest()

    if tools:
        payload["tools"] = tools
        choice, parallel = _tool_choice(body.get("tool_choice"), names, dropped_tools)
        if choice is not None:
            payload["tool_choice"] = choice
        if parallel is False:
            payload["parallel_tool_calls"] = False
    else:
        _tool_choice(body.get("tool_choice"), names, dropped_tools, check_name=False)  # still validated

    output_config = body.get("output_config")
    if output_config is not None and not isinstance(output_config, dict):
        raise InvalidRequest("output_config: must be an object", param="output_config")
    output_config = output_config or {}
    effort = _reasoning_effort(body.get("thinking"), output_config.get("effort"))
    if effort is not None:
        payload["reasoning_effort"] = effort
    output_format = output_config.get("format")
    if output_format is None:
        output_format = body.get("output_format")
    if output_format is not None:
        payload["response_format"] = _response_format(output_format)

    dropped_fields = sorted(k for k in body if k not in HANDLED_FIELDS)
    tool_names = {upstream: client for client, upstream in names.items() if upstream != client}
    return Translation(payload, dropped_tools, dropped_fields, tool_names, sink or [])


def upstream_tool_name(name: str) -> str:
    """A tool name within OpenAI's 64 characters: longer ones keep 55 and add a hash of the whole."""
    if len(name) <= OPENAI_TOOL_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: OPENAI_TOOL_NAME_MAX - 9]}_{digest}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _tools(raw: Any, names: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise InvalidRequest("tools: must be a list", param="tools")
    tools: list[dict[str, Any]] = []
    dropped: list[str] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{i}: must be an object", param="tools")
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            if not isinstance(kind, str) or not kind:
                raise InvalidRequest(f"tools.{i}.type: must be a string", param="tools")
            dropped.append(tool["name"] if isinstance(tool.get("name"), str) and tool["name"] else kind)
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools.{i}.name: Field required", param="tools")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(f"tools.{i}.input_schema: Field required (a JSON schema object)", param="tools")
        upstream = upstream_tool_name(name)
        names[name] = upstream
        function: dict[str, Any] = {"name": upstream}
        description = tool.get("description")
        if isinstance(description, str) and description:
            function["description"] = description
        function["parameters"] = schema
        tools.append({"type": "function", "function": function})
    return tools, dropped


def _tool_choice(
    raw: Any, names: dict[str, str], dropped_tools: list[str], *, check_name: bool = True
) -> tuple[Any, bool | None]:
    """(OpenAI tool_choice or None, parallel_tool_calls or None)."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise InvalidRequest("tool_choice: must be an object", param="tool_choice")
    kind = raw.get("type")
    disable = raw.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise InvalidRequest("tool_choice.disable_parallel_tool_use: must be a boolean", param="tool_choice")
    parallel = False if disable else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("tool_choice.name: Field required", param="tool_choice")
        if not check_name:
            return None, None
        if name in names:
            return {"type": "function", "function": {"name": names[name]}}, parallel
        if name in dropped_tools:  # a server tool this upstream does not have: let the model choose
            return None, parallel
        raise InvalidRequest(f"tool_choice.name: no tool named {name!r} in tools", param="tool_choice")
    raise InvalidRequest("tool_choice.type: must be one of auto, any, tool, none", param="tool_choice")


def _reasoning_effort(thinking: Any, effort: Any) -> str | None:
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise InvalidRequest("thinking: must be an object", param="thinking")
        kind = thinking.get("type")
        if kind not in ("enabled", "adaptive", "disabled", "between_tools"):
            raise InvalidRequest("thinking.type: must be one of enabled, adaptive, disabled", param="thinking")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not _is_int(budget) or budget < MIN_THINKING_BUDGET:
                raise InvalidRequest("thinking.budget_tokens: must be an integer >= 1024", param="thinking.budget_tokens")
    if effort is not None:
        if effort not in EFFORTS:
            raise InvalidRequest(
                "output_config.effort: must be one of low, medium, high, xhigh, max", param="output_config.effort"
            )
        return EFFORTS[effort]
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking["budget_tokens"]
        for limit, name in BUDGET_EFFORT:
            if budget < limit:
                return name
        return "high"
    return None


def _response_format(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("type") != "json_schema" or not isinstance(raw.get("schema"), dict):
        raise InvalidRequest(
            'output_config.format: must be {"type": "json_schema", "schema": {...}}', param="output_config.format"
        )
    return {"type": "json_schema", "json_schema": {"name": JSON_SCHEMA_NAME, "schema": raw["schema"]}}


def _system_text(raw: Any, where: str, *, strip_billing: bool = False) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list):
        texts = []
        for j, block in enumerate(raw):
            if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise InvalidRequest(f"{where}.{j}: only text blocks are allowed here", param=_param(where))
            texts.append(block["text"])
    else:
        raise InvalidRequest(f"{where}: must be a string or a list of text blocks", param=_param(where))
    if strip_billing:
        texts = [_strip_billing_header(t) for t in texts]
    return "\n\n".join(t for t in texts if t.strip())


def _strip_billing_header(text: str) -> str:
    if not text.lstrip().startswith(BILLING_HEADER_PREFIX):
        return text
    _, _, rest = text.lstrip().partition("\n")
    return rest.lstrip("\n")


def _param(where: str) -> str:
    return "system" if where == "system" else "messages"


def _messages(raw: Any, names: dict[str, str], sink: list[Untranslatable] | None) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages: must be a non-empty list", param="messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: must be an object", param="messages")
        role = message.get("role")
        if "content" not in message:
            raise InvalidRequest(f"{where}.content: Field required", param="messages")
        content = message["content"]
        if not isinstance(content, (str, list)):
            raise InvalidRequest(f"{where}.content: must be a string or a list of content blocks", param="messages")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for j, block in enumerate(blocks):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise InvalidRequest(f"{where}.content.{j}: a content block must be an object with a type", param="messages")
        if role == "user":
            out += _user_turn(blocks, where, sink)
        elif role == "assistant":
            turn = _assistant_turn(blocks, where, names)
            if turn is not None:
                out.append(turn)
        elif role == "system":
            text = _system_text(content, where)
            if text:
                out.append({"role": "system", "content": text})
        else:
            raise InvalidRequest(f"{where}.role: must be 'user' or 'assistant' (got {role!r})", param="messages")
    return out


def _text_of(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: Field required (a string)", param="messages")
    return text


def _user_turn(blocks: list[dict[str, Any]], where: str, sink: list[Untranslatable] | None) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    attachments: list[dict[str, Any]] = []  # media returned by tools: OpenAI tool messages are text-only
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        kind = block["type"]
        if kind == "tool_result":
            message, media = _tool_result(block, at, sink)
            tool_messages.append(message)
            attachments += media
        elif kind in ("thinking", "redacted_thinking", "tool_use") or kind in SERVER_BLOCKS:
            raise InvalidRequest(f"{at}: a {kind} block is not allowed in a user message", param="messages")
        else:
            parts += _content_parts(block, at, sink)
    parts = attachments + [p for p in parts if p["type"] != "text" or p["text"].strip()]
    out = list(tool_messages)
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _content_parts(block: dict[str, Any], where: str, sink: list[Untranslatable] | None) -> list[dict[str, Any]]:
    """OpenAI user content parts for a text, image, document or search_result block."""
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": _text_of(block, where)}]
    if kind == "image":
        return [_image_part(block, where, sink)]
    if kind == "document":
        return _document_parts(block, where, sink)
    if kind == "search_result":
        inner = block.get("content")
        if not isinstance(inner, list):
            raise InvalidRequest(f"{where}.content: Field required (text blocks)", param="messages")
        texts = [_text_of(b, f"{where}.content.{k}") for k, b in enumerate(inner) if isinstance(b, dict)]
        head = " — ".join(str(block[k]) for k in ("title", "source") if isinstance(block.get(k), str) and block[k])
        return [{"type": "text", "text": "\n".join([head, *texts] if head else texts)}]
    raise InvalidRequest(f"{where}.type: unsupported content block type {kind!r}", param="messages")


def _image_part(block: dict[str, Any], where: str, sink: list[Untranslatable] | None) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: Field required", param="messages")
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not media_type.startswith("image/") or not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.source: base64 images need an image media_type and data", param="messages")
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"{where}.source.url: Field required", param="messages")
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "file":
        _untranslatable(sink, f"{where}.source: Files API images (file_id) are not supported for this model", "messages")
        return {"type": "text", "text": "[image from the Files API omitted]"}
    raise InvalidRequest(f"{where}.source.type: must be base64 or url", param="messages")


def _document_parts(block: dict[str, Any], where: str, sink: list[Untranslatable] | None) -> list[dict[str, Any]]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source: Field required", param="messages")
    kind = source.get("type")
    title = block.get("title") if isinstance(block.get("title"), str) else None
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if media_type != "application/pdf" or not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.source: base64 documents must be application/pdf with data", param="messages")
        filename = title if title else "document.pdf"
        return [{"type": "file", "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"}}]
    if kind == "text":
        data = source.get("data")
        if not isinstance(data, str):
            raise InvalidRequest(f"{where}.source.data: Field required (a string)", param="messages")
        return [{"type": "text", "text": f"{title}\n\n{data}" if title else data}]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": inner}]
        if not isinstance(inner, list):
            raise InvalidRequest(f"{where}.source.content: must be a string or a list of blocks", param="messages")
        parts: list[dict[str, Any]] = []
        for k, sub in enumerate(inner):
            at = f"{where}.source.content.{k}"
            if not isinstance(sub, dict) or sub.get("type") not in ("text", "image"):
                raise InvalidRequest(f"{at}: only text and image blocks are allowed here", param="messages")
            parts += _content_parts(sub, at, sink)
        return parts
    if kind == "url":
        _untranslatable(
            sink, f"{where}.source: document URLs are not supported for this model; send the PDF as base64", "messages"
        )
        return [{"type": "text", "text": "[document omitted]"}]
    if kind == "file":
        _untranslatable(sink, f"{where}.source: Files API documents (file_id) are not supported for this model", "messages")
        return [{"type": "text", "text": "[document from the Files API omitted]"}]
    raise InvalidRequest(f"{where}.source.type: must be base64, text, content or url", param="messages")


def _tool_result(
    block: dict[str, Any], where: str, sink: list[Untranslatable] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_use_id: Field required", param="messages")
    content = block.get("content")
    texts: list[str] = []
    media: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, sub in enumerate(content):
            at = f"{where}.content.{k}"
            if not isinstance(sub, dict) or not isinstance(sub.get("type"), str):
                raise InvalidRequest(f"{at}: a content block must be an object with a type", param="messages")
            if sub["type"] == "tool_reference":  # tool search bookkeeping, nothing for another model
                continue
            if sub["type"] not in ("text", "image", "document", "search_result"):
                raise InvalidRequest(f"{at}.type: {sub['type']!r} is not allowed in a tool_result", param="messages")
            for part in _content_parts(sub, at, sink):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    media.append(part)
    elif content is not None:
        raise InvalidRequest(f"{where}.content: must be a string or a list of blocks", param="messages")
    text = "\n".join(t for t in texts if t)
    if block.get("is_error") is True:
        text = f"{TOOL_ERROR_PREFIX}{text}" if text else TOOL_ERROR_PREFIX.rstrip(": ")
    return {"role": "tool", "tool_call_id": call_id, "content": text}, media


def _assistant_turn(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> dict[str, Any] | None:
    texts: list[str] = []
    thinking: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        kind = block["type"]
        if kind == "text":
            text = _text_of(block, at)
            if text.strip():
                texts.append(text)
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise InvalidRequest(f"{at}: tool_use needs an id and a name", param="messages")
            if not isinstance(arguments, dict):
                raise InvalidRequest(f"{at}.input: must be an object", param="messages")
            function = {"name": names.get(name, upstream_tool_name(name)), "arguments": orjson.dumps(arguments).decode()}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif kind == "thinking":
            text, signature = block.get("thinking"), block.get("signature")
            if not isinstance(text, str) or not isinstance(signature, str):
                raise InvalidRequest(f"{at}: thinking needs thinking and signature strings", param="messages")
            thinking.append(text)
            if signature:
                entry = {"type": "reasoning.text", "text": text, "signature": signature, "format": REASONING_FORMAT}
                details.append({**entry, "index": len(details)})
        elif kind == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str) or not data:
                raise InvalidRequest(f"{at}.data: Field required", param="messages")
            details.append({"type": "reasoning.encrypted", "data": data, "format": REASONING_FORMAT, "index": len(details)})
        elif kind in SERVER_BLOCKS:
            continue
        elif kind in ("image", "document", "tool_result", "search_result"):
            raise InvalidRequest(f"{at}: a {kind} block is not allowed in an assistant message", param="messages")
        else:
            raise InvalidRequest(f"{at}.type: unsupported content block type {kind!r}", param="messages")
    if not texts and not calls and not thinking and not details:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if details:
        message["reasoning_details"] = details
    return message


# --------------------------------------------------------------------------- response


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage (cache reads and writes beside ``input_tokens``) from OpenAI-semantics usage."""
    cached = max(usage.cached_tokens, 0)
    cache_write = max(usage.cache_write_tokens, 0)
    out: dict[str, Any] = {
        "input_tokens": max(usage.prompt_tokens - cached - cache_write, 0),
        "output_tokens": max(usage.completion_tokens, 0),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cached,
    }
    if usage.reasoning_tokens > 0:
        out["output_tokens_details"] = {"thinking_tokens": min(usage.reasoning_tokens, out["output_tokens"])}
    if usage.tool_uses:  # Anthropic always reports both counts (the SDK requires them), then any other
        counts = {"web_search": 0, "web_fetch": 0, **usage.tool_uses}
        out["server_tool_use"] = {f"{kind}_requests": count for kind, count in counts.items()}
    return out


def stop_reason(finish_reason: str | None, *, tool_use: bool, stop_string: Any = None) -> str:
    """Anthropic's stop_reason for an OpenAI finish_reason (and whether tool_use blocks were sent)."""
    if finish_reason in (None, "stop", "tool_calls", "function_call"):
        if tool_use:
            return "tool_use"
        if finish_reason == "stop" and isinstance(stop_string, str) and stop_string:
            return "stop_sequence"
        return "end_turn"
    return STOP_REASONS.get(finish_reason, "end_turn")


def _foreign(entry: dict[str, Any]) -> bool:
    fmt = entry.get("format")
    return isinstance(fmt, str) and bool(fmt) and not fmt.startswith("anthropic")


def _restore(name: Any, tool_names: Mapping[str, str]) -> str:
    text = name if isinstance(name, str) else ""
    return tool_names.get(text, text)


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {}
        if isinstance(parsed, dict):
            return parsed
    return {}


def _message_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # some vendors answer with content parts
        return "".join(p["text"] for p in value if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    has_text = False
    for entry in message.get("reasoning_details") or ():
        if not isinstance(entry, dict):
            continue
        kind = entry.get("type")
        if kind in ("reasoning.text", "reasoning.summary"):
            text = entry.get("text") if kind == "reasoning.text" else entry.get("summary")
            signature = entry.get("signature")
            signature = signature if isinstance(signature, str) and not _foreign(entry) else ""
            text = text if isinstance(text, str) else ""
            if text or signature:
                blocks.append({"type": "thinking", "thinking": text, "signature": signature})
                has_text = has_text or bool(text)
        elif kind == "reasoning.encrypted" and not _foreign(entry) and isinstance(entry.get("data"), str) and entry["data"]:
            blocks.append({"type": "redacted_thinking", "data": entry["data"]})
    if not has_text:
        text = message.get("reasoning_content")
        text = text if isinstance(text, str) and text else message.get("reasoning")
        if isinstance(text, str) and text:
            blocks.append({"type": "thinking", "thinking": text, "signature": ""})
    return blocks


def to_anthropic_message(
    completion: dict[str, Any],
    usage: Usage,
    client_model: str,
    message_id: str,
    *,
    tool_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An Anthropic ``Message`` for an OpenAI ``chat.completion`` (see the module notes)."""
    names = tool_names or {}
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content = _thinking_blocks(message)
    text = _message_text(message.get("content"))
    if not text.strip():
        refusal = message.get("refusal")
        text = refusal if isinstance(refusal, str) else ""
    if text.strip():
        content.append({"type": "text", "text": text})
    tool_use = False
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            continue
        call_id = call.get("id") or f"toolu_{secrets.token_hex(12)}"
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call_id),
                "name": _restore(function.get("name"), names),
                "input": _arguments(function.get("arguments")),
            }
        )
        tool_use = True
    finish = choice.get("finish_reason")
    stop_string = choice.get("stop_reason")
    reason = stop_reason(finish if isinstance(finish, str) else None, tool_use=tool_use, stop_string=stop_string)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop_string if reason == "stop_sequence" else None,
        "usage": anthropic_usage(usage),
    }


def new_message_id() -> str:
    """A unique Anthropic-style message id (``msg_`` + 24 random hex digits)."""
    return f"msg_{secrets.token_hex(12)}"


# --------------------------------------------------------------------------- errors


def error_type(status: int) -> str:
    """Anthropic's ``error.type`` for an HTTP status (other 4xx: invalid_request_error; other 5xx: api_error)."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(status: int, message: str, *, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(status), "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


# --------------------------------------------------------------------------- stream


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _complete_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


@dataclass
class _ToolCall:
    index: int  # the OpenAI tool-call index
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # every fragment received
    pending: list[str] = field(default_factory=list)  # fragments not yet sent (block not started)
    block: int | None = None  # Anthropic block index once started
    closed: bool = False


class AnthropicStreamWriter:
    """OpenAI ``chat.completion.chunk`` dicts -> Anthropic's SSE event sequence, as bytes.

    ``start`` gives ``message_start`` (empty content, input tokens as known) and a ``ping``;
    ``chunks`` gives ``content_block_start``/``content_block_delta``/``content_block_stop`` events;
    ``finish`` closes what is open, then ``message_delta`` (stop_reason and the full usage, which
    the SDK's accumulator lets overwrite message_start's) and ``message_stop``. ``error`` gives an
    ``error`` event; nothing follows an error or a finish. ``chunks``/``finish`` start the message
    themselves when ``start`` was not called.

    One block is open at a time and block indexes count up from 0; a block of another kind closes
    the open one. Per delta: reasoning first (``reasoning_content``, else ``reasoning``, else the
    text of ``reasoning_details``) -> a thinking block per reasoning-details index, with that
    entry's signature as a ``signature_delta`` before it closes (only for ``anthropic-*`` or
    format-less entries; ``reasoning.encrypted`` -> a whole ``redacted_thinking`` block); then
    ``content`` (or ``refusal``) -> text_delta; then ``tool_calls`` -> one ``tool_use`` block per
    OpenAI tool-call index (id made Anthropic-safe, shortened names restored, ``input: {}``) and
    ``input_json_delta`` fragments in order. A tool call that starts while the open tool block's
    arguments are not yet a complete JSON value waits (its fragments buffered) until they are, or
    until the end: Anthropic's blocks cannot interleave. Late fragments of a block already closed
    by text or reasoning are dropped (counted in ``dropped_fragments``). Role-only and empty deltas
    give nothing; choices other than index 0 are ignored.
    """

    def __init__(self, client_model: str, message_id: str, *, tool_names: Mapping[str, str] | None = None) -> None:
        self.client_model = client_model
        self.message_id = message_id
        self._names = dict(tool_names or {})
        self._started = False
        self._done = False
        self._next = 0
        self._open: tuple[str, Any] | None = None  # ("text", None) | ("thinking", key) | ("tool", openai index)
        self._open_index = -1
        self._calls: dict[int, _ToolCall] = {}
        self._queue: list[int] = []  # tool calls waiting for their block, in arrival order
        self._closed_thinking: set[Any] = set()
        self._pieces: list[str] = []
        self._tool_use = False
        self._stop_string: Any = None
        self.finish_reason: str | None = None  # the last finish_reason seen in the chunks
        self.dropped_fragments = 0

    # -- public -----------------------------------------------------------

    @property
    def delivered_text(self) -> str:
        """Everything sent as text, thinking, tool names and arguments (for estimating tokens)."""
        return "".join(self._pieces)

    def delivered_tokens(self) -> int:
        return estimate_tokens(self.delivered_text)

    @property
    def finished(self) -> bool:
        return self._done

    def start(self, input_tokens: int = 0) -> bytes:
        if self._started:
            return b""
        self._started = True
        usage = {
            "input_tokens": max(int(input_tokens), 0),
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.client_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return _event("message_start", {"type": "message_start", "message": message}) + _event("ping", {"type": "ping"})

    def chunks(self, chunks: list[dict[str, Any]]) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = [self.start()]
        for chunk in chunks:
            if not isinstance(chunk, dict):
                continue
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    out += self._delta(delta)
                if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
                    self.finish_reason = choice["finish_reason"]
                    if isinstance(choice.get("stop_reason"), str):
                        self._stop_string = choice["stop_reason"]
        return b"".join(out)

    def finish(self, usage: Usage, finish_reason: str | None) -> bytes:
        if self._done:
            return b""
        out = [self.start(), *self._flush()]
        self._done = True
        reason = stop_reason(finish_reason or self.finish_reason, tool_use=self._tool_use, stop_string=self._stop_string)
        delta = {"stop_reason": reason, "stop_sequence": self._stop_string if reason == "stop_sequence" else None}
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": anthropic_usage(usage)}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, error_type: str, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        return _event("error", {"type": "error", "error": {"type": error_type, "message": message}})

    # -- blocks -----------------------------------------------------------

    def _start_block(self, block: dict[str, Any]) -> tuple[int, bytes]:
        index = self._next
        self._next += 1
        return index, _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        kind, key = self._open
        if kind == "thinking" and key is not None:
            self._closed_thinking.add(key)
        elif kind == "tool":
            self._calls[key].closed = True
        self._open = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self._open_index})]

    def _open_block(self, kind: str, key: Any, block: dict[str, Any]) -> list[bytes]:
        index, data = self._start_block(block)
        self._open = (kind, key)
        self._open_index = index
        return [data]

    def _flush(self) -> list[bytes]:
        """Close the open block and send every tool call still waiting, each as a whole block."""
        out = self._close()
        while self._queue:
            call = self._calls[self._queue.pop(0)]
            if call.name is None:  # never named: nothing an Anthropic client could run
                continue
            out += self._start_tool(call)
            out += self._close()
        return out

    def _leave_tools(self) -> list[bytes]:
        """Before text or reasoning: a tool block or waiting tool calls are finished now."""
        if self._queue or (self._open is not None and self._open[0] == "tool"):
            return self._flush()
        return []

    # -- deltas -----------------------------------------------------------

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        text = delta.get("reasoning_content")
        if not isinstance(text, str) or not text:
            text = delta.get("reasoning") if isinstance(delta.get("reasoning"), str) else ""
        details = [d for d in delta.get("reasoning_details") or () if isinstance(d, dict)]
        if text or details:
            out += self._reasoning(text, details)
        content = delta.get("content")
        if isinstance(content, str) and content:
            out += self._text(content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out += self._text(refusal)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out += self._tool_delta(call)
        return out

    def _text(self, text: str) -> list[bytes]:
        out = self._leave_tools()
        if self._open is None or self._open[0] != "text":
            out += self._close()
            out += self._open_block("text", None, {"type": "text", "text": ""})
        self._pieces.append(text)
        out.append(self._block_delta(self._open_index, {"type": "text_delta", "text": text}))
        return out

    def _thinking_open_for(self, key: Any) -> bool:
        if self._open is None or self._open[0] != "thinking":
            return False
        open_key = self._open[1]
        if open_key is None and key is not None:
            self._open = ("thinking", key)  # the block learns its reasoning index
            return True
        return key is None or open_key == key

    def _ensure_thinking(self, key: Any) -> list[bytes]:
        if self._thinking_open_for(key):
            return []
        out = self._leave_tools() + self._close()
        return out + self._open_block("thinking", key, {"type": "thinking", "thinking": "", "signature": ""})

    def _reasoning(self, text: str, details: list[dict[str, Any]]) -> list[bytes]:
        out: list[bytes] = []
        text_keys = [d.get("index") for d in details if d.get("type") in ("reasoning.text", "reasoning.summary")]
        if text:
            out += self._ensure_thinking(text_keys[0] if text_keys else None)
            self._pieces.append(text)
            out.append(self._block_delta(self._open_index, {"type": "thinking_delta", "thinking": text}))
        for entry in details:
            kind, key = entry.get("type"), entry.get("index")
            if kind in ("reasoning.text", "reasoning.summary"):
                piece = entry.get("text") if kind == "reasoning.text" else entry.get("summary")
                if not text and isinstance(piece, str) and piece:
                    out += self._ensure_thinking(key)
                    self._pieces.append(piece)
                    out.append(self._block_delta(self._open_index, {"type": "thinking_delta", "thinking": piece}))
                signature = entry.get("signature")
                if isinstance(signature, str) and signature and not _foreign(entry):
                    if not self._thinking_open_for(key):
                        if key is not None and key in self._closed_thinking:
                            continue  # its block is closed: nowhere to put it
                        out += self._ensure_thinking(key)
                    out.append(self._block_delta(self._open_index, {"type": "signature_delta", "signature": signature}))
            elif kind == "reasoning.encrypted":
                data = entry.get("data")
                if isinstance(data, str) and data and not _foreign(entry):
                    out += self._leave_tools() + self._close()
                    out += self._open_block("redacted_thinking", key, {"type": "redacted_thinking", "data": data})
                    out += self._close()
        return out

    def _tool_delta(self, raw: dict[str, Any]) -> list[bytes]:
        index = raw.get("index")
        if not _is_int(index):
            index = max(self._calls, default=-1) + (1 if raw.get("id") or not self._calls else 0)
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = _ToolCall(index)
            self._queue.append(index)
        if isinstance(raw.get("id"), str) and raw["id"] and call.id is None:
            call.id = raw["id"]
        function = raw.get("function") if isinstance(raw.get("function"), dict) else {}
        if isinstance(function.get("name"), str) and function["name"] and call.name is None:
            call.name = function["name"]
        out: list[bytes] = []
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            call.arguments += fragment
            if call.closed:
                self.dropped_fragments += 1
            elif call.block is not None:
                self._pieces.append(fragment)
                out.append(self._block_delta(call.block, {"type": "input_json_delta", "partial_json": fragment}))
            else:
                call.pending.append(fragment)
        return out + self._advance()

    def _advance(self) -> list[bytes]:
        """Start waiting tool calls whose turn has come."""
        out: list[bytes] = []
        while self._queue:
            head = self._calls[self._queue[0]]
            if head.name is None:
                break
            if self._open is not None and self._open[0] == "tool" and not _complete_json(self._calls[self._open[1]].arguments):
                break  # the open call may still receive fragments
            self._queue.pop(0)
            out += self._close()
            out += self._start_tool(head)
        return out

    def _start_tool(self, call: _ToolCall) -> list[bytes]:
        name = _restore(call.name, self._names)
        call_id = tool_use_id(call.id) if call.id else f"toolu_{secrets.token_hex(12)}"
        out = self._open_block("tool", call.index, {"type": "tool_use", "id": call_id, "name": name, "input": {}})
        call.block = self._open_index
        self._tool_use = True
        self._pieces.append(name)
        if call.pending:
            fragment = "".join(call.pending)
            call.pending.clear()
            self._pieces.append(fragment)
            out.append(self._block_delta(call.block, {"type": "input_json_delta", "partial_json": fragment}))
        return out
