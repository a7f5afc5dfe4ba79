"""What a fake records of each request, and the bases of the fakes' states."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson
from aiohttp import web


class Headers(dict[str, str]):
    """A plain dict of request headers with case-insensitive lookup (keys stored lower-case)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: Headers
    json: Any  # parsed body, or None when the body was not valid JSON
    raw: bytes = b""


R = TypeVar("R")


@dataclass(kw_only=True)
class RecordingState(Generic[R]):
    """A fake's state that records every request it receives."""

    requests: list[R] = field(default_factory=list)

    def reset(self) -> None:
        """Forget recorded requests."""
        self.requests.clear()


@dataclass(kw_only=True)
class TrackedState(RecordingState[R]):
    """A recording state that also counts in-flight and cancelled requests (see ``tracked``)."""

    active_requests: int = 0
    cancelled_requests: int = 0
    active_streams: int = 0
    cancelled_streams: int = 0

    def reset(self) -> None:
        """Forget recorded requests and cancellation counts.

        The ``active_*`` counters are live (in-flight handlers decrement them later)
        and are deliberately left alone.
        """
        self.requests.clear()
        self.cancelled_requests = self.cancelled_streams = 0


def install_state(app: web.Application, key: web.AppKey[Any], state: Any) -> None:
    """Put ``state`` on ``app`` under ``key`` and under the documented string key ``"state"``."""
    app[key] = state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app["state"] = state  # the documented string key, kept for convenience


def record_request(
    request: web.Request, state: RecordingState[RecordedRequest], parsed: Any = None, raw: bytes = b""
) -> RecordedRequest:
    """Append a ``RecordedRequest`` for ``request`` to ``state.requests`` and return it."""
    recorded = RecordedRequest(request.method, request.path, Headers(request.headers.items()), parsed, raw)
    state.requests.append(recorded)
    return recorded


async def read_json(request: web.Request, state: RecordingState[RecordedRequest]) -> tuple[RecordedRequest, bool]:
    """Read the body, parse it with orjson and record the request.

    Returns the record (``json`` is None when the body did not parse) and whether it parsed.
    """
    raw = await request.read()
    try:
        parsed, ok = orjson.loads(raw), True
    except orjson.JSONDecodeError:
        parsed, ok = None, False
    return record_request(request, state, parsed, raw), ok
