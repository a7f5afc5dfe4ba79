"""OpenAI Chat Completions shapes both directions share: usage (read, and written with our exact ``cost``), the
generated text of an answer (for estimates), finish reasons and error bodies, in a response and inside a stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenhub.errors import GatewayError
from tokenhub.providers.base import error_message
from tokenhub.sse import frame
from tokenhub.tokens import MalformedUsage, Usage, usage_count
from tokenhub.upstream import Channel


def read_usage(raw: Any) -> Usage | None:
    """OpenAI usage, including the vendors' spellings of cached tokens (DeepSeek's cache hits).
    None when absent or malformed (a count that is not a non-negative integer): the relay then
    charges its estimate, flagged ``estimated``."""
    if not isinstance(raw, dict):
        return None
    try:
        prompt_details = _details(raw.get("prompt_tokens_details"))
        completion_details = _details(raw.get("completion_tokens_details"))
        cached = usage_count(prompt_details.get("cached_tokens")) or usage_count(raw.get("prompt_cache_hit_tokens"))
        return Usage(
            prompt_tokens=usage_count(raw.get("prompt_tokens")),
            completion_tokens=usage_count(raw.get("completion_tokens")),
            cached_tokens=cached,
            cache_write_tokens=usage_count(prompt_details.get("cache_write_tokens")),
            reasoning_tokens=usage_count(completion_details.get("reasoning_tokens")),
        )
    except MalformedUsage:
        return None


def _details(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedUsage
    return value


def usage_object(usage: Usage, cost_text: str) -> dict[str, Any]:
    """A usage object in OpenAI's shape, with our ``cost`` (exact USD) added."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost": orjson.Fragment(cost_text.encode()),
    }
    if usage.estimated:
        out["estimated"] = True
    return out


def with_cost(raw: Any, usage: Usage, cost_text: str) -> dict[str, Any]:
    """The upstream's usage object as it came (all its details), plus ``cost``; our own object when
    the charge is an estimate (the upstream's was missing or malformed)."""
    if isinstance(raw, dict) and not usage.estimated:
        merged = dict(raw)
        merged["cost"] = orjson.Fragment(cost_text.encode())
        return merged
    return usage_object(usage, cost_text)






def error_detail(body: bytes) -> str:
    """The message of an OpenAI-style error body (or the start of whatever the body is)."""
    return error_message(body)


def error_event(err: GatewayError | dict[str, Any], channel: Channel | None = None) -> bytes:
    """An error inside a stream, as the OpenAI SDK raises it (``data: {"error": {...}}``)."""
    if isinstance(err, GatewayError):
        body = err.to_openai()
    else:
        message = str(err.get("message") or "the upstream reported an error")
        if channel is not None:
            message = channel.redact(message)
        body = {
            "error": {
                "message": message[:1000],
                "type": str(err.get("type") or "upstream_error"),
                "code": err.get("code") if isinstance(err.get("code"), (str, type(None))) else str(err.get("code")),
                "param": None,
            }
        }
    return frame(orjson.dumps(body))
