"""An OpenAI ``chat.completion`` answered to a Messages client as an Anthropic ``Message``; usage, stop
reasons and error bodies in Anthropic's words.

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
"""

from __future__ import annotations

import secrets
from typing import Any, Mapping

import orjson

from tokenhub.providers.anthropic.wire import tool_arguments, tool_use_id
from tokenhub.tokens import Usage

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


def cost_fragment(cost_text: str) -> orjson.Fragment:
    """The exact USD cost as a JSON number in ``usage.cost`` (OpenAI's and OpenRouter's field; Anthropic's SDKs keep extra fields)."""
    return orjson.Fragment(cost_text.encode())


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


def foreign(entry: dict[str, Any]) -> bool:
    fmt = entry.get("format")
    return isinstance(fmt, str) and bool(fmt) and not fmt.startswith("anthropic")


def restore(name: Any, tool_names: Mapping[str, str]) -> str:
    text = name if isinstance(name, str) else ""
    return tool_names.get(text, text)


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
            signature = signature if isinstance(signature, str) and not foreign(entry) else ""
            text = text if isinstance(text, str) else ""
            if text or signature:
                blocks.append({"type": "thinking", "thinking": text, "signature": signature})
                has_text = has_text or bool(text)
        elif kind == "reasoning.encrypted" and not foreign(entry) and isinstance(entry.get("data"), str) and entry["data"]:
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
                "name": restore(function.get("name"), names),
                "input": tool_arguments(function.get("arguments")),
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
