"""Anthropic Messages shapes both directions share: the API version, URLs, usage in OpenAI's semantics,
stop reasons and error bodies.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from tokenhub.providers.base import error_message
from tokenhub.tokens import MalformedUsage, Usage, usage_count

ANTHROPIC_VERSION = "2026-10-21"  # current; the first version without temperature/top_p/top_k


LEGACY_VERSION = "2023-06-01"


REASONING_FORMAT = "anthropic-claude-v1"


FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def messages_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"


def read_usage(raw: Any) -> Usage | None:
    """Anthropic usage (additive cache fields) in OpenAI semantics, with the server-tool uses
    (``server_tool_use: {"web_search_requests": N, "web_fetch_requests": M}`` -> ``tool_uses``
    ``{"web_search": N, "web_fetch": M}``). None when absent or malformed (a count that is not a
    non-negative integer): the relay then charges its estimate, flagged."""
    if not isinstance(raw, dict):
        return None
    try:
        return _usage(raw)
    except MalformedUsage:
        return None


def _usage(raw: dict[str, Any]) -> Usage:
    input_tokens = usage_count(raw.get("input_tokens"))
    output_tokens = usage_count(raw.get("output_tokens"))
    cache_read = usage_count(raw.get("cache_read_input_tokens"))
    cache_write = usage_count(raw.get("cache_creation_input_tokens"))
    details = raw.get("output_tokens_details")
    if details is not None and not isinstance(details, dict):
        raise MalformedUsage
    thinking = usage_count(details.get("thinking_tokens")) if details else 0
    return Usage(
        prompt_tokens=input_tokens + cache_read + cache_write,
        completion_tokens=output_tokens,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=min(thinking, output_tokens),
        tool_uses=server_tool_uses(raw.get("server_tool_use")),
    )


def server_tool_uses(raw: Any) -> dict[str, int]:
    """``server_tool_use`` -> uses by tool kind (``web_search_requests`` -> ``web_search``)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MalformedUsage
    uses: dict[str, int] = {}
    for key, value in raw.items():
        if isinstance(key, str) and key.endswith("_requests"):
            count = usage_count(value)
            if count:
                uses[key.removesuffix("_requests")] = count
    return uses


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(str(stop_reason), "stop")


def error_detail(body: bytes) -> str:
    """The message of Anthropic's ``{"type": "error", "error": {"type", "message"}}`` (or the body's start)."""
    return error_message(body)


_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]+")


def tool_use_id(value: Any) -> str:
    """A tool call id as Anthropic accepts it; the same input always gives the same id."""
    text = value if isinstance(value, str) else ""
    if _TOOL_ID.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    cleaned = _TOOL_ID_BAD.sub("_", text).strip("_")[:40]
    return f"{cleaned}_{digest}" if cleaned else f"toolu_{digest}"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def tool_arguments(raw: Any) -> dict[str, Any]:
    """A tool call's arguments as an object; anything that is not a JSON object gives ``{}``."""
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
