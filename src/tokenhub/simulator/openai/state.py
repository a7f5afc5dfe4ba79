"""The fake OpenAI's state: its keys, models, pacing and the requests it recorded."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from tokenhub.simulator.common.recording import RecordedRequest, TrackedState

DEFAULT_MODELS = ("gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "o4-mini")


@dataclass
class FakeOpenAIState(TrackedState[RecordedRequest]):
    """``requests``, the ``active_*``/``cancelled_*`` counters and ``reset()`` come from TrackedState."""

    api_keys: set[str] | None = None
    token_delay: float = 0.0
    models: tuple[str, ...] = DEFAULT_MODELS


STATE_KEY = web.AppKey("tokenhub_fake_openai_state", FakeOpenAIState)
