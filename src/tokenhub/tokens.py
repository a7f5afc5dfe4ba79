"""Token counts: the ``Usage`` an upstream reports, and estimates where no count exists.

Estimates answer two different questions, with two functions:

* ``prompt_upper_bound`` sizes the *hold*: it must never be below the real prompt count. A BPE
  token is at least one byte of text, so the UTF-8 size of the request (minus inline image data,
  which is priced per image instead) bounds the text tokens; each image adds a fixed allowance
  above what any supported vendor charges for one image. Parts whose token count has no such
  bound — files and PDFs (pages), audio (seconds), documents the upstream fetches or keeps —
  make the bound ``None``: the caller then holds for the model's whole context window, the only
  sound bound left (an upstream refuses a longer prompt).
* ``estimate_tokens`` is a fair *guess* for text that was delivered but never counted by the
  upstream (a client that hung up, a vendor that sent no usage): about 4 characters per token for
  ASCII, one token per other character. Such charges are flagged ``estimated``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

MEDIA_PART_ALLOWANCE: Final = 6_000  # tokens held per image part
MESSAGE_OVERHEAD: Final = 8  # framing tokens per message
TEXT_PARTS: Final = frozenset({None, "text", "refusal"})


@dataclass
class Usage:
    """Token counts in OpenAI's semantics: cached and cache-write tokens are part of
    ``prompt_tokens``; reasoning tokens are part of ``completion_tokens``. ``tool_uses`` counts the
    server-tool uses the upstream reported, by tool kind (``{"web_search": 2}``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    tool_uses: dict[str, int] = field(default_factory=dict)


class MalformedUsage(Exception):
    """A usage block with a count that is not a non-negative integer (negative, float, string, ...).

    Usage readers catch it and answer None: the relay then charges its estimate, flagged
    ``estimated``, as for missing usage — never 0 for a count it could not read."""


MAX_USAGE_COUNT: Final = 500_000_000
"""The most tokens (or uses) one count of one request's usage may say: far beyond any model's context and
output, and low enough that the sums a protocol makes of its counts (Anthropic's prompt is three of them)
stay within the 32-bit token columns. A higher count is an upstream's garbage: charged as if malformed."""


def usage_count(value: Any) -> int:
    """A token or use count from an upstream's usage: absent/null is 0; anything but a
    non-negative integer up to ``MAX_USAGE_COUNT`` raises ``MalformedUsage``."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_USAGE_COUNT:
        return value
    raise MalformedUsage


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    ascii_chars = len(text.encode("ascii", "ignore"))
    other = len(text) - ascii_chars
    return -(-ascii_chars // 4) + other


def prompt_upper_bound(payload: dict[str, Any], body_size: int) -> int | None:
    """At least the prompt's token count, for a request body of ``body_size`` bytes; ``None`` when a
    part (a file, audio, anything but text and images) has no bound short of the context window."""
    media_parts = 0
    media_bytes = 0
    messages = payload.get("messages")
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in TEXT_PARTS:
                    continue
                if kind != "image_url":
                    return None
                media_parts += 1
                media_bytes += _inline_data_size(part)
        body_tokens = max(body_size - media_bytes, 0) + MESSAGE_OVERHEAD * len(messages)
    else:
        body_tokens = body_size
    return body_tokens + media_parts * MEDIA_PART_ALLOWANCE


def _inline_data_size(part: dict[str, Any]) -> int:
    for value in part.values():
        if isinstance(value, dict):
            for field in ("url", "data", "file_data"):
                data = value.get(field)
                if isinstance(data, str) and (field != "url" or data.startswith("data:")):
                    return len(data)
    return 0


def prompt_estimate(payload: dict[str, Any]) -> int:
    """A fair guess of the prompt's tokens when the upstream never said."""
    total = 0
    messages = payload.get("messages") or []
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    if part.get("type") == "text":
                        total += estimate_tokens(str(part.get("text", "")))
                    else:
                        total += 1_000
    return total
