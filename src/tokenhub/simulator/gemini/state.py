"""The fake Gemini's state: its keys, models, pacing, issued thought signatures and recorded requests."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tokenhub.simulator.common.recording import Headers, TrackedState

DEFAULT_MODELS = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-flash-latest",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
    "gemini-embedding-001",
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    json: Any  # parsed body, or None when the body was not valid JSON
    raw: bytes = b""


@dataclass
class FakeGeminiState(TrackedState[RecordedRequest]):
    """``requests``, the ``active_*``/``cancelled_*`` counters and ``reset()`` come from TrackedState.

    ``reset()`` leaves issued signatures valid.
    """

    api_keys: set[str] | None = None
    token_delay: float = 0.0
    models: tuple[str, ...] = DEFAULT_MODELS
    signatures: set[str] = field(default_factory=set)  # every thoughtSignature issued

    def new_signature(self) -> str:
        signature = base64.b64encode(b"\x0a\x24" + secrets.token_bytes(46)).decode()
        self.signatures.add(signature)
        return signature


STATE_KEY = web.AppKey("tokenhub_fake_gemini_state", FakeGeminiState)
