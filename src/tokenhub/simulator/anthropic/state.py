"""The fake Anthropic's state: its keys, models, pacing and the requests it recorded."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from aiohttp import web

from tokenhub.simulator.common.recording import RecordedRequest, TrackedState

DEFAULT_MODELS = ("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6", "claude-sonnet-4-5")


@dataclass
class FakeAnthropicState(TrackedState[RecordedRequest]):
    """``requests``, the ``active_*``/``cancelled_*`` counters and ``reset()`` come from TrackedState.

    ``reset()`` leaves issued thinking signatures valid (they are checked by HMAC,
    ``issued_signatures`` is informational).
    """

    api_keys: set[str] | None = None
    token_delay: float = 0.0
    models: tuple[str, ...] = DEFAULT_MODELS
    allow_system_role: bool = False
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    issued_signatures: set[str] = field(default_factory=set)


STATE_KEY = web.AppKey("tokenhub_fake_anthropic_state", FakeAnthropicState)
