"""Deterministic text and ids the fakes generate, and the malformed counts of ``#fake:bad_usage``."""

from __future__ import annotations

import secrets
import string
from typing import Any

REPLY_WORDS = "Hello! This is a fake reply.".split()
REASONING_WORDS = "Let me think about this step by step.".split()
ALNUM = string.ascii_letters + string.digits


def word_pieces(words: list[str], count: int) -> list[str]:
    """`count` pieces cycling through `words`; each but the last keeps a trailing space."""
    pieces = [words[i % len(words)] + " " for i in range(count)]
    if pieces:
        pieces[-1] = pieces[-1].rstrip(" ")
    return pieces


def random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(ALNUM) for _ in range(length))


BAD_USAGE: dict[str, Any] = {"negative": -7, "float": 12.5, "string": "12", "huge": 3_000_000_000_000}


def malformed_count(kind: str | None, count: int) -> Any:
    """``count`` as a fake reports it under ``#fake:bad_usage=KIND``: ``negative`` -7, ``float`` 12.5,
    ``string`` "12" (JSON text), ``huge`` three trillion, anything else ``"bad"``; ``count`` itself
    without the directive."""
    if kind is None:
        return count
    return BAD_USAGE.get(kind, "bad")
