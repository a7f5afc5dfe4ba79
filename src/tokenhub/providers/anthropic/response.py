"""A complete Anthropic message read back into an OpenAI ``chat.completion``.

Response: text -> ``content`` (null when there is none); tool_use -> ``tool_calls`` (compact JSON
arguments); thinking -> ``reasoning_content`` + ``reasoning_details`` entries ``{"type":
"reasoning.text", "text", "signature", "format": "anthropic-claude-v1", "index"}``;
redacted_thinking -> ``{"type": "reasoning.encrypted", "data", ...}``. Usage in OpenAI semantics:
prompt = input + cache read + cache creation, cached = cache read, cache write = cache creation,
completion = output (thinking included), reasoning = ``output_tokens_details.thinking_tokens``.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from tokenhub.providers.anthropic.wire import REASONING_FORMAT, finish_reason, read_usage, usage_dict
from tokenhub.providers.base import (
    Completion,
    now,
)


def _json(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


class CompletionFromMessage(dict):  # type: ignore[type-arg]
    """An OpenAI ``chat.completion`` dict (serialised as one) that also keeps, in ``.message``, the
    Anthropic message it was read from: an Anthropic client on the pass-through gets that message
    itself, server-tool blocks, citations and all, instead of a re-translation."""

    message: dict[str, Any]


def parse_message(obj: dict[str, Any]) -> Completion:
    texts: list[str] = []
    thinking: list[str] = []
    details: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in obj.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": _json(block.get("input"))},
                }
            )
        elif kind == "thinking":
            text = block.get("thinking") if isinstance(block.get("thinking"), str) else ""
            thinking.append(text)
            entry = {"type": "reasoning.text", "text": text, "signature": block.get("signature"), "format": REASONING_FORMAT}
            details.append({**entry, "index": len(details)})
        elif kind == "redacted_thinking":
            details.append(
                {"type": "reasoning.encrypted", "data": block.get("data"), "format": REASONING_FORMAT, "index": len(details)}
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if details:
        message["reasoning_details"] = details
    usage = read_usage(obj.get("usage"))
    body = CompletionFromMessage(
        {
            "id": f"chatcmpl-{obj.get('id') or secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": now(),
            "model": obj.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason(obj.get("stop_reason")) or "stop",
                }
            ],
        }
    )
    body.message = obj
    if usage is not None:
        body["usage"] = usage_dict(usage)
    return Completion(body, usage)
