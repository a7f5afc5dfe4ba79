"""What the fake reads from a Messages request: its text, its input tokens, its thinking setting."""

from __future__ import annotations

import json
from typing import Any


def blocks_of(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content if isinstance(content, list) else []


def _tool_result_text(block: dict[str, Any]) -> str:
    return " ".join(
        b["text"]
        for b in blocks_of(block.get("content"))
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    )


def block_text(block: Any) -> str:
    """The countable text of one content block."""
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return block["text"]
    if kind == "tool_use":
        return f"{block.get('name', '')} {json.dumps(block.get('input', {}))}"
    if kind == "tool_result":
        return _tool_result_text(block)
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return block["thinking"]
    return ""


def message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    return " ".join(block_text(b) for b in blocks_of(message.get("content")))


def system_text(system: Any) -> str:
    return " ".join(block_text(b) for b in blocks_of(system))


def count_input_tokens(body: dict[str, Any]) -> int:
    total = len(system_text(body.get("system")).split())
    total += sum(3 + len(message_text(m).split()) for m in body.get("messages") or [])
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            total += len(f"{tool.get('name', '')} {tool.get('description', '')}".split())
    return total


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def has_1h_cache(value: Any) -> bool:
    if isinstance(value, dict):
        control = value.get("cache_control")
        if isinstance(control, dict) and control.get("ttl") == "1h":
            return True
        return any(has_1h_cache(v) for v in value.values())
    if isinstance(value, list):
        return any(has_1h_cache(v) for v in value)
    return False


def thinking_enabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
