"""A client's Anthropic Messages request read into the gateway's OpenAI chat shape (``POST /api/v1/messages``
for models that no Anthropic upstream serves natively; the pass-through is :mod:`.passthrough`).

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
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from tokenhub.errors import InvalidRequest
from tokenhub.providers.anthropic.inbound_turns import (
    Untranslatable,
    assistant_turn,
    untranslatable,
    upstream_tool_name,
    user_turn,
)
from tokenhub.providers.anthropic.wire import is_int

USER_ID_MAX = 64


BILLING_HEADER_PREFIX = "x-anthropic-billing-header"


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
    if not is_int(max_tokens) or max_tokens < 0:
        raise InvalidRequest("max_tokens: must be a non-negative integer", param="max_tokens")
    if max_tokens == 0:
        untranslatable(sink, "max_tokens: 0 (cache pre-warming) is only supported by Anthropic models", "max_tokens")
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

    _sampling(body, payload)
    _tools_and_output(body, payload, tools, names, dropped_tools)

    dropped_fields = sorted(k for k in body if k not in HANDLED_FIELDS)
    tool_names = {upstream: client for client, upstream in names.items() if upstream != client}
    return Translation(payload, dropped_tools, dropped_fields, tool_names, sink or [])


def _sampling(body: dict[str, Any], payload: dict[str, Any]) -> None:
    """Temperature, top_p, stop sequences, stream and the end user, checked and copied across."""
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


def _tools_and_output(
    body: dict[str, Any], payload: dict[str, Any], tools: list[dict[str, Any]], names: dict[str, str], dropped_tools: list[str]
) -> None:
    """Tools and tool choice, reasoning effort and the structured output format."""
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
            if not is_int(budget) or budget < MIN_THINKING_BUDGET:
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
            out += user_turn(blocks, where, sink)
        elif role == "assistant":
            turn = assistant_turn(blocks, where, names)
            if turn is not None:
                out.append(turn)
        elif role == "system":
            text = _system_text(content, where)
            if text:
                out.append({"role": "system", "content": text})
        else:
            raise InvalidRequest(f"{where}.role: must be 'user' or 'assistant' (got {role!r})", param="messages")
    return out
