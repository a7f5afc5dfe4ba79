"""The gateway's OpenAI chat request as an Anthropic Messages request (``POST {base_url}/v1/messages``).

Request (OpenAI chat -> ``POST {base_url}/v1/messages``)
  * Headers: ``x-api-key``, ``anthropic-version`` (:data:`ANTHROPIC_VERSION`, the current version;
    ``anthropic_version=`` pins another per channel), ``content-type``; ``extra_headers=`` is merged
    last (``anthropic-beta`` pass-through).
  * ``system``/``developer`` messages, wherever they are, become ``system`` text blocks in order
    (``cache_control`` on a part is kept). Consecutive same-role turns are merged; ``tool`` messages
    become ``tool_result`` blocks and every user turn lists its tool results before anything else.
    Empty and whitespace-only text never becomes a block; an empty user message is dropped; a
    conversation that would start with the assistant gets a one-character user turn first; the
    final assistant turn (a prefill) loses trailing whitespace, which the API rejects.
  * ``max_output=`` (the relay's bound: the client's, clamped to the model's cap), else
    ``max_completion_tokens`` or ``max_tokens``, else :data:`DEFAULT_MAX_TOKENS`; thinking's room
    raises it, never above ``output_ceiling=``.
  * Sampling: API version 2026-10-21 removed ``temperature``/``top_p``/``top_k`` (400 even at their
    defaults), so they are dropped. Pinned to 2023-06-01 they are sent (temperature clamped to
    [0, 1]) unless thinking is on, which forbids them.
  * ``stop`` -> ``stop_sequences`` (whitespace-only entries dropped); ``user`` (or
    ``safety_identifier``) -> ``metadata.user_id`` unless it looks like an e-mail or phone number.
  * Images: data URLs -> base64 source (``application/pdf`` -> a ``document``), http(s) -> url source.
    ``input_audio``, file ids and ``n`` > 1 are refused with 400; logprobs, seed and penalties
    are dropped.
  * Tools: ``{name, description, input_schema: parameters}`` (schema passed through unchanged,
    ``strict`` kept); tool_choice auto/none/required(any)/named(tool); ``parallel_tool_calls:
    false`` -> ``disable_parallel_tool_use``. Assistant ``tool_calls`` -> ``tool_use`` with the
    arguments parsed; arguments that are not a JSON object (invalid or truncated JSON included)
    are sent as ``{}`` rather than failing the whole conversation. Ids outside
    ``^[a-zA-Z0-9_-]+$`` are rewritten deterministically (cleaned + hash), so a tool_use and its
    tool_result still match.
  * ``reasoning_effort`` (or OpenRouter's ``reasoning.effort``): models from Claude 4.6 on (and
    ids without a version, e.g. ``claude-mythos-preview``) get ``thinking: {"type": "adaptive",
    "display": "summarized"}`` + ``output_config.effort`` (minimal -> low; ``xhigh`` and ``max``
    step down to what the model accepts: xhigh on Opus 4.7+ and 5+, max on 4.6+, neither on
    Haiku). Older models get ``{"type": "enabled", "budget_tokens": N}`` with N a share of
    max_tokens (:data:`BUDGET_SHARE`), at least 1024; when that does not fit, max_tokens is raised to
    N + the client's figure. ``none`` means no thinking.
  * Thinking is switched off for the request when the client forces a tool (tool_choice
    required/named) or when the last assistant turn with tool_use carries no signed thinking
    (the API would answer 400); thinking blocks are then not sent at all (the effort, on models
    that take one, is still sent).
  * Reasoning replay: an assistant message's ``reasoning_details`` (OpenRouter's shape) become
    ``thinking`` (``reasoning.text`` with a signature) and ``redacted_thinking``
    (``reasoning.encrypted``) blocks, first in the turn; LiteLLM's ``thinking_blocks`` are read
    too. Reasoning without a signature, or of another vendor's ``format``, is dropped.
  * ``response_format``: ``json_schema`` -> ``output_config.format`` (structured outputs, GA on
    Claude 4.5+); ``json_object`` has no schema to give, so it becomes a system instruction.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tokenhub.errors import InvalidRequest
from tokenhub.providers.anthropic.wire import ANTHROPIC_VERSION, messages_url, tool_arguments, tool_use_id
from tokenhub.providers.base import (
    UpstreamRequest,
)
from tokenhub.upstream import Channel

DEFAULT_MAX_TOKENS = 4096  # when neither the client nor the relay (max_output=) gives a figure


MIN_THINKING_BUDGET = 1024


# Budget-form thinking (models before Claude 4.6): the share of max_tokens given to thinking.
BUDGET_SHARE = {"minimal": 0.1, "low": 0.2, "medium": 0.5, "high": 0.8, "xhigh": 0.9, "max": 0.95}


EFFORTS = ("none", *BUDGET_SHARE)


JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else: no prose, no code fences."


IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)((?:;[^,;]*)*),(.*)$", re.DOTALL)


_VERSION = re.compile(r"claude-(?:[a-z]+-)?(\d{1,2})(?:[-.](\d{1,2})(?!\d))?")


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


_PHONE = re.compile(r"^\+?[\d\s().-]{7,}$")


def model_version(model: str) -> tuple[int, int] | None:
    """(major, minor) of a Claude model id (``claude-opus-4-6`` -> (4, 6)); None when it has none."""
    match = _VERSION.search(model.lower())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def uses_adaptive_thinking(model: str) -> bool:
    """Claude 4.6 and later (and unversioned ids) take adaptive thinking + effort, not a budget."""
    version = model_version(model)
    return version is None or version >= (4, 6)


def adaptive_effort(model: str, effort: str) -> str:
    """The ``output_config.effort`` the model accepts closest to the client's ``reasoning_effort``."""
    if effort == "minimal":
        return "low"
    version = model_version(model)
    haiku = "haiku" in model.lower()
    supports_max = not haiku and (version is None or version >= (4, 6))
    supports_xhigh = not haiku and (
        (version is not None and (version >= (5, 0) or ("opus" in model.lower() and version >= (4, 7))))
        or (version is None and "preview" not in model.lower())
    )
    if effort == "xhigh" and not supports_xhigh:
        effort = "max"
    if effort == "max" and not supports_max:
        effort = "high"
    return effort


def build_request(
    payload: dict[str, Any],
    upstream_model: str,
    channel: Channel,
    *,
    stream: bool,
    max_output: int | None = None,
    output_ceiling: int | None = None,
    extra_headers: dict[str, str] | None = None,
    anthropic_version: str | None = None,
) -> UpstreamRequest:
    version = anthropic_version or ANTHROPIC_VERSION
    body = translate_request(payload, upstream_model, max_output=max_output, output_ceiling=output_ceiling, version=version)
    if stream:
        body["stream"] = True
    headers = {
        "x-api-key": channel.api_key,
        "anthropic-version": version,
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
    }
    headers.update(extra_headers or {})
    return UpstreamRequest(
        url=messages_url(channel.base_url), headers=headers, body=orjson.dumps(body), max_output=body.get("max_tokens")
    )


def translate_request(
    payload: dict[str, Any],
    model: str,
    *,
    max_output: int | None = None,
    output_ceiling: int | None = None,
    version: str = ANTHROPIC_VERSION,
) -> dict[str, Any]:
    """The Anthropic Messages body for an OpenAI chat payload (without ``stream``).

    ``max_tokens`` is ``max_output`` when given (the relay's bound, which the hold covers), else the
    client's; room for thinking may raise it, never above ``output_ceiling``."""
    n = payload.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        raise InvalidRequest("this model returns one choice per request: 'n' must be 1", param="n")

    max_tokens = _positive_int(max_output) or _positive_int(payload.get("max_completion_tokens"))
    max_tokens = max_tokens or _positive_int(payload.get("max_tokens")) or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens}

    tools = _tools(payload.get("tools"))
    tool_choice = _tool_choice(payload.get("tool_choice")) if tools else None
    if tools and payload.get("parallel_tool_calls") is False:
        tool_choice = tool_choice or {"type": "auto"}
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    forced = tool_choice is not None and tool_choice["type"] in ("any", "tool")

    effort = _effort(payload)
    thinking = effort is not None and effort != "none" and not forced

    system, messages = _messages(payload.get("messages"), keep_thinking=thinking)
    if thinking and not _last_tool_turn_signed(messages):
        thinking = False
        messages = _strip_thinking(messages)

    output_config: dict[str, Any] = {}
    if effort is not None and effort != "none" and uses_adaptive_thinking(model):
        output_config["effort"] = adaptive_effort(model, effort)  # effort also applies without thinking
    if thinking and effort is not None:
        _thinking(body, model, effort, max_tokens, output_ceiling)

    response_format = payload.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise InvalidRequest("response_format.json_schema.schema must be a JSON schema object", param="response_format")
            output_config["format"] = {"type": "json_schema", "schema": schema}
        elif kind == "json_object":
            system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})

    if system:
        body["system"] = system
    body["messages"] = messages
    if tools:
        body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    if output_config:
        body["output_config"] = output_config

    _sampling(payload, body, version=version, thinking=thinking)
    return body


def _thinking(body: dict[str, Any], model: str, effort: str, max_tokens: int, output_ceiling: int | None) -> None:
    """Adaptive thinking from Claude 4.6 on; a budget (a share of max_tokens, with room added within the ceiling) before."""
    if uses_adaptive_thinking(model):
        body["thinking"] = {"type": "adaptive", "display": "summarized"}
        return
    budget = max(MIN_THINKING_BUDGET, int(max_tokens * BUDGET_SHARE[effort]))
    if budget >= max_tokens:  # room for thinking on top of the answer, within the ceiling
        body["max_tokens"] = min(budget + max_tokens, output_ceiling or budget + max_tokens)
        budget = min(budget, body["max_tokens"] - 1)
    if budget >= MIN_THINKING_BUDGET:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _sampling(payload: dict[str, Any], body: dict[str, Any], *, version: str, thinking: bool) -> None:
    """Sampling parameters (only before 2026-10-21, and never with thinking), stop sequences, the end user."""
    if version < ANTHROPIC_VERSION and not thinking:  # sampling parameters exist only before 2026-10-21
        temperature = payload.get("temperature")
        if _is_number(temperature):
            body["temperature"] = min(max(float(temperature), 0.0), 1.0)
        top_p = payload.get("top_p")
        if _is_number(top_p):
            body["top_p"] = top_p

    stops = payload.get("stop")
    stops = [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []
    stop_sequences = [s for s in stops if isinstance(s, str) and s.strip()]
    if stop_sequences:
        body["stop_sequences"] = stop_sequences

    user = payload.get("user") or payload.get("safety_identifier")
    if isinstance(user, str) and user.strip() and not _EMAIL.match(user.strip()) and not _PHONE.match(user.strip()):
        body["metadata"] = {"user_id": user}


def _effort(payload: dict[str, Any]) -> str | None:
    effort = payload.get("reasoning_effort")
    reasoning = payload.get("reasoning")
    if effort is None and isinstance(reasoning, dict):
        effort = reasoning.get("effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise InvalidRequest(f"reasoning_effort must be one of {', '.join(EFFORTS)}", param="reasoning_effort")
    return str(effort)


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        return []
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
            raise InvalidRequest(f"tools[{i}]: only function tools can be sent to this model", param="tools")
        function = tool["function"]
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools[{i}].function.name is required", param="tools")
        schema = function.get("parameters")
        schema = dict(schema) if isinstance(schema, dict) else {}
        if "type" not in schema:
            schema["type"] = "object"
        if schema["type"] == "object" and "properties" not in schema:
            schema["properties"] = {}
        out: dict[str, Any] = {"name": name}
        if isinstance(function.get("description"), str) and function["description"]:
            out["description"] = function["description"]
        out["input_schema"] = schema
        if function.get("strict") is True:
            out["strict"] = True
        cache_control = tool.get("cache_control") or function.get("cache_control")
        if isinstance(cache_control, dict):
            out["cache_control"] = cache_control
        tools.append(out)
    return tools


def _tool_choice(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if raw == "auto":
        return {"type": "auto"}
    if raw == "none":
        return {"type": "none"}
    if raw == "required":
        return {"type": "any"}
    if isinstance(raw, dict):
        function = raw.get("function")
        if raw.get("type") == "function" and isinstance(function, dict) and isinstance(function.get("name"), str):
            return {"type": "tool", "name": function["name"]}
        if raw.get("type") == "allowed_tools":  # no subset restriction upstream: keep the mode
            mode = (raw.get("allowed_tools") or {}).get("mode") if isinstance(raw.get("allowed_tools"), dict) else None
            return {"type": "any"} if mode == "required" else {"type": "auto"}
    raise InvalidRequest("tool_choice must be 'auto', 'none', 'required' or a named function", param="tool_choice")


def _text_block(text: Any, part: dict[str, Any] | None = None) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text.strip():
        return None
    block: dict[str, Any] = {"type": "text", "text": text}
    if part is not None and isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _texts(content: Any, where: str) -> list[dict[str, Any]]:
    """Text blocks of a system/developer/assistant content (string or text parts)."""
    if isinstance(content, str):
        block = _text_block(content)
        return [block] if block else []
    blocks: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and part.get("type") == "text":
            block = _text_block(part.get("text"), part)
            if block:
                blocks.append(block)
        elif isinstance(part, dict) and part.get("type") == "refusal":
            continue
        else:
            raise InvalidRequest(f"{where}: only text content is allowed here", param="messages")
    return blocks


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return _texts(content or "", where)
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts", param="messages")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block = _text_block(part.get("text"), part)
            if block:
                blocks.append(block)
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(_image_block(url, f"{where}.content[{j}]", part))
        elif kind == "file":
            blocks.append(_file_block(part.get("file"), f"{where}.content[{j}]"))
        elif kind == "input_audio":
            raise InvalidRequest(f"{where}.content[{j}]: audio input is not supported by this model", param="messages")
        else:
            raise InvalidRequest(f"{where}.content[{j}]: unsupported content part type {kind!r}", param="messages")
    return blocks


def _image_block(url: Any, where: str, part: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}: image_url.url is required", param="messages")
    block: dict[str, Any]
    if url.startswith("data:"):
        media_type, data = _data_url(url, where)
        if media_type == "application/pdf":
            block = {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
        elif media_type in IMAGE_TYPES:
            block = {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
        else:
            raise InvalidRequest(f"{where}: image type {media_type} is not supported (jpeg, png, gif, webp)", param="messages")
    elif url.lower().startswith(("http://", "https://")):
        block = {"type": "image", "source": {"type": "url", "url": url}}
    else:
        raise InvalidRequest(f"{where}: image_url.url must be an http(s) URL or a base64 data URL", param="messages")
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _data_url(url: str, where: str) -> tuple[str, str]:
    match = _DATA_URL.match(url)
    if match is None or ";base64" not in match.group(2).lower():
        raise InvalidRequest(f"{where}: a data URL must be base64-encoded (data:<type>;base64,...)", param="messages")
    return match.group(1).lower(), match.group(3).strip()


def _file_block(file: Any, where: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data:
        raise InvalidRequest(f"{where}: only inline files (file_data) are supported, not file ids", param="messages")
    media_type, payload = _data_url(data, where) if data.startswith("data:") else ("application/pdf", data)
    if media_type != "application/pdf":
        raise InvalidRequest(f"{where}: only PDF files are supported", param="messages")
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": payload}}


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id(message.get("tool_call_id"))}
    content = message.get("content")
    if isinstance(content, str):
        if content.strip():
            block["content"] = content
    elif isinstance(content, list):
        inner = _user_blocks(content, where)
        if inner:
            block["content"] = inner
    return block


def _reasoning_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Signed thinking of an earlier answer, from ``reasoning_details`` (or LiteLLM's ``thinking_blocks``)."""
    blocks: list[dict[str, Any]] = []
    details = message.get("reasoning_details")
    if isinstance(details, list) and details:
        for entry in details:
            if not isinstance(entry, dict):
                continue
            fmt = entry.get("format")
            if isinstance(fmt, str) and fmt and not fmt.startswith("anthropic"):
                continue
            signature = entry.get("signature")
            if entry.get("type") == "reasoning.text" and isinstance(signature, str) and signature:
                text = entry.get("text")
                blocks.append({"type": "thinking", "thinking": text if isinstance(text, str) else "", "signature": signature})
            elif entry.get("type") == "reasoning.encrypted" and isinstance(entry.get("data"), str) and entry["data"]:
                blocks.append({"type": "redacted_thinking", "data": entry["data"]})
        return blocks
    for entry in message.get("thinking_blocks") or ():
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == "thinking" and isinstance(entry.get("signature"), str) and entry["signature"]:
            text = entry.get("thinking")
            blocks.append(
                {"type": "thinking", "thinking": text if isinstance(text, str) else "", "signature": entry["signature"]}
            )
        elif entry.get("type") == "redacted_thinking" and isinstance(entry.get("data"), str) and entry["data"]:
            blocks.append({"type": "redacted_thinking", "data": entry["data"]})
    return blocks


def _messages(raw: Any, *, keep_thinking: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": list(blocks)})

    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param="messages")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_texts(content, where))
        elif role == "user":
            add("user", _user_blocks(content, where))
        elif role == "tool":
            add("user", [_tool_result(message, where)])
        elif role == "assistant":
            blocks = _reasoning_blocks(message) if keep_thinking else []
            blocks += _texts(content, where)
            for k, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise InvalidRequest(f"{where}.tool_calls[{k}].function.name is required", param="messages")
                call_id = call.get("id") or f"call_{i}_{k}"
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tool_use_id(call_id),
                        "name": function["name"],
                        "input": tool_arguments(function.get("arguments")),
                    }
                )
            add("assistant", blocks)
        else:
            raise InvalidRequest(f"{where}: unsupported role {role!r}", param="messages")

    if not turns:
        raise InvalidRequest("messages must contain at least one user or assistant message with content", param="messages")
    if turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": "."}]})
    for turn in turns:
        if turn["role"] == "user":  # tool results first, in their order, then everything else
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    last = turns[-1]
    if last["role"] == "assistant" and last["content"] and last["content"][-1]["type"] == "text":
        stripped = last["content"][-1]["text"].rstrip()
        last["content"][-1] = {**last["content"][-1], "text": stripped}
    return system, turns


def _last_tool_turn_signed(messages: list[dict[str, Any]]) -> bool:
    """False when the last assistant turn calls tools without starting with (signed) thinking."""
    for turn in reversed(messages):
        if turn["role"] != "assistant":
            continue
        blocks = turn["content"]
        if not any(b["type"] == "tool_use" for b in blocks):
            return True
        return blocks[0]["type"] in ("thinking", "redacted_thinking")
    return True


def _strip_thinking(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for turn in messages:
        if turn["role"] == "assistant":
            blocks = [b for b in turn["content"] if b["type"] not in ("thinking", "redacted_thinking")]
            if not blocks:
                continue
            turn = {"role": "assistant", "content": blocks}
        if out and out[-1]["role"] == turn["role"]:
            out[-1] = {"role": turn["role"], "content": out[-1]["content"] + turn["content"]}
        else:
            out.append(turn)
    return out
