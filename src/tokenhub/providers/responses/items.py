"""The Responses shapes the gateway answers: output items, usage (with ``cost``) and the response object.

A chat answer becomes, in order: a ``reasoning`` item (its text as one ``summary_text``) when the
upstream sent reasoning, a ``message`` item with one ``output_text`` part when it sent text, and a
``function_call`` item per tool call (``call_id`` is the chat tool call's id). ``status`` is
``completed``, or ``incomplete`` with ``incomplete_details.reason`` ``max_output_tokens`` (finish
``length``) or ``content_filter``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from tokenhub.tokens import Usage


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def reasoning_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id or new_id("rs"), "summary": [{"type": "summary_text", "text": text}]}


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": item_id or new_id("msg"), "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip


def call_item(call_id: str, name: str, arguments: str, item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id or new_id("fc"), "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}  # fmt: skip


def output_items(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The output items of a chat ``message``."""
    items = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        items.append(reasoning_item(reasoning))
    text = message.get("content")
    if isinstance(text, str) and text:
        items.append(message_item(text))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(call_item(str(call.get("id") or new_id("call")), str(function.get("name") or ""), str(function.get("arguments") or "")))
    return items


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def usage_block(usage: Usage, cost_text: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "cost": orjson.Fragment(cost_text.encode()),
    }
    if usage.estimated:
        out["estimated"] = True
    return out


class ResponseShape:
    """The fields every response object of one request repeats (id, model, the request's echo)."""

    def __init__(self, response_id: str, model: str, echo: dict[str, Any], previous: str | None, store: bool,
                 metadata: dict[str, Any] | None) -> None:  # fmt: skip
        self.id = response_id
        self.created_at = int(time.time())
        self.model = model
        self.echo = echo
        self.previous = previous
        self.store = store
        self.metadata = metadata or {}

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
                 incomplete: dict[str, str] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status, "error": error,
            "incomplete_details": incomplete, "model": self.model, "output": output, "usage": usage,
            "previous_response_id": self.previous, "store": self.store, "metadata": self.metadata,
            "truncation": "disabled", **self.echo,
        }  # fmt: skip
