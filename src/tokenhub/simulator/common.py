"""Plumbing shared by the fake upstreams in :mod:`tokenhub.simulator` (aiohttp).

Nothing here speaks a vendor protocol; each ``*_protocol`` module keeps its own
routes, bodies, errors and wire framing and builds on these pieces:

* request recording: ``Headers`` (a dict with lower-case keys and
  case-insensitive lookup), ``RecordedRequest``, ``record_request`` and
  ``read_json`` (read, parse with orjson, record — rejected requests included);
* state bases: ``RecordingState`` (``requests`` + ``reset``) and
  ``TrackedState`` (adds the ``active_*``/``cancelled_*`` counters that
  ``tracked`` maintains); ``install_state`` puts a state on an app under its
  ``AppKey`` and the documented ``app["state"]`` string key;
* client disconnects: ``ClientGone``, ``client_gone``, ``sleep_unless_gone``,
  ``wait_until_gone``, ``abort_connection`` (a deliberate hang-up, flagged with
  ``ABORTED_KEY`` so it is not counted as a client cancellation), the
  ``EventWriter`` base of the stream writers, ``tracked`` and
  ``serve_scenario`` (``slow_first``/``hang``/``reset`` directives + counters);
* ``#fake:NAME[=VALUE]`` directives: ``DIRECTIVE_RE``, ``parse_directives`` and
  the ``Directives`` mixin giving a Scenario dataclass its ``parse`` classmethod,
  raising each fake's own error type; ``EXTRA_DIRECTIVES`` (a context variable)
  adds directives to every ``Directives.parse`` of the current request — how the
  operator simulator (:mod:`tokenhub.simulator.server`) injects stream faults;
* mounting under a path prefix: ``MOUNT_PREFIX_KEY`` (set by whoever mounts the
  fake as a sub-application), ``public_base`` (the origin plus that prefix, for
  the media URLs a fake hands out) and ``local_path`` (the path without it);
* deterministic text: ``REPLY_WORDS``, ``REASONING_WORDS``, ``word_pieces``,
  ``random_id``;
* malformed usage (``#fake:bad_usage=KIND``): ``malformed_count`` gives the
  output-token count a fake reports instead of the real one.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Protocol, TypeVar

import orjson
from aiohttp import web

__all__ = [
    "ABORTED_KEY",
    "ALNUM",
    "DIRECTIVE_RE",
    "DISCONNECT_POLL_SECONDS",
    "EXTRA_DIRECTIVES",
    "MOUNT_PREFIX_KEY",
    "REASONING_WORDS",
    "REPLY_WORDS",
    "STARTED_KEY",
    "ClientGone",
    "Directives",
    "EventWriter",
    "Headers",
    "RecordedRequest",
    "RecordingState",
    "TrackedState",
    "abort_connection",
    "client_gone",
    "directive_names",
    "elapsed_ms",
    "install_state",
    "local_path",
    "malformed_count",
    "parse_directives",
    "public_base",
    "random_id",
    "read_json",
    "record_request",
    "serve_scenario",
    "sleep_unless_gone",
    "stamp_start",
    "start_event_stream",
    "tracked",
    "wait_until_gone",
    "word_pieces",
]

REPLY_WORDS = "Hello! This is a fake reply.".split()
REASONING_WORDS = "Let me think about this step by step.".split()
DISCONNECT_POLL_SECONDS = 0.02
ALNUM = string.ascii_letters + string.digits

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --------------------------------------------------------------------------- recorded requests


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


# --------------------------------------------------------------------------- state bases

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


def record_request(request: web.Request, state: RecordingState[RecordedRequest], parsed: Any = None,
                   raw: bytes = b"") -> RecordedRequest:
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


# --------------------------------------------------------------------------- request keys and middleware

STARTED_KEY = web.RequestKey("tokenhub_fake_started", float)
ABORTED_KEY = web.RequestKey("tokenhub_fake_aborted", bool)  # the server hangs up on purpose


@web.middleware
async def stamp_start(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Remember when the request arrived (``STARTED_KEY``), for processing-time headers."""
    request[STARTED_KEY] = time.monotonic()
    return await handler(request)


def elapsed_ms(request: web.Request) -> int:
    """Whole milliseconds since ``stamp_start`` saw the request (0 when it did not)."""
    started = request.get(STARTED_KEY, time.monotonic())
    return int((time.monotonic() - started) * 1000)


# --------------------------------------------------------------------------- mounting under a prefix

MOUNT_PREFIX_KEY = web.AppKey("tokenhub_fake_mount_prefix", str)


def public_base(request: web.Request) -> str:
    """``scheme://host`` plus the prefix the fake is mounted under (``MOUNT_PREFIX_KEY``, "" at the root).

    Where the URLs a fake hands out (result videos, images) must start to reach it again.
    """
    return f"{request.scheme}://{request.host}{request.app.get(MOUNT_PREFIX_KEY, '')}"


def local_path(request: web.Request) -> str:
    """The request path as the fake sees it: without the prefix it is mounted under."""
    prefix = request.app.get(MOUNT_PREFIX_KEY, "")
    return request.path[len(prefix):] if prefix and request.path.startswith(prefix + "/") else request.path


# --------------------------------------------------------------------------- client disconnects


class ClientGone(Exception):
    """The client disconnected before the response was complete."""


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def sleep_unless_gone(request: web.Request, seconds: float) -> None:
    """Sleep, raising ClientGone as soon as the client disconnects."""
    deadline = time.monotonic() + seconds
    while True:
        if client_gone(request):
            raise ClientGone
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, DISCONNECT_POLL_SECONDS))


async def wait_until_gone(request: web.Request) -> None:
    while not client_gone(request):
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)
    raise ClientGone


def abort_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


class EventWriter:
    """Base of the stream writers: writes onto a prepared StreamResponse, noticing client disconnects."""

    def __init__(self, request: web.Request, response: web.StreamResponse, delay: float) -> None:
        self.request = request
        self.response = response
        self.delay = delay
        self.sent = 0

    async def write(self, data: bytes) -> None:
        if client_gone(self.request):
            raise ClientGone
        try:
            await self.response.write(data)
        except ConnectionResetError as exc:
            raise ClientGone from exc

    async def pace(self) -> None:
        """Wait ``delay`` seconds before every event but the first."""
        if self.sent and self.delay > 0:
            await sleep_unless_gone(self.request, self.delay)


async def start_event_stream(request: web.Request, headers: Mapping[str, str]) -> web.StreamResponse:
    """Prepare a ``text/event-stream`` response carrying ``headers`` as well."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache",
        **headers,
    })
    await response.prepare(request)
    return response


async def tracked(request: web.Request, state: TrackedState[Any], is_stream: bool,
                  run: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Run a response, maintaining the active/cancelled counters."""
    state.active_requests += 1
    state.active_streams += is_stream
    try:
        return await run()
    except (ClientGone, asyncio.CancelledError):
        if client_gone(request) and not request.get(ABORTED_KEY, False):
            state.cancelled_requests += 1
            state.cancelled_streams += is_stream
        raise
    finally:
        state.active_requests -= 1
        state.active_streams -= is_stream


class TimingScenario(Protocol):
    """The directives ``serve_scenario`` acts on."""

    reset: bool
    slow_first: float
    hang: bool


async def serve_scenario(request: web.Request, state: TrackedState[Any], scenario: TimingScenario, is_stream: bool,
                         respond: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Answer with ``respond()`` under ``tracked``, after the ``slow_first``/``hang`` directives.

    ``reset`` marks the request as hung up on purpose (not a client cancellation).
    A client that went away gets a 499, which never reaches it.
    """
    if scenario.reset:
        request[ABORTED_KEY] = True

    async def run() -> web.StreamResponse:
        if scenario.slow_first:
            await sleep_unless_gone(request, scenario.slow_first)
        if scenario.hang:
            await wait_until_gone(request)
        return await respond()

    try:
        return await tracked(request, state, is_stream, run)
    except ClientGone:
        return web.Response(status=499)  # never reaches the (gone) client


# --------------------------------------------------------------------------- directives

DIRECTIVE_RE = re.compile(r"#fake:([A-Za-z_]+)(?:=(\S+))?")
# Directives added to the text of every ``Directives.parse`` in the current context (a request's
# handler task): the operator simulator sets it from a middleware to inject faults. Empty: none.
EXTRA_DIRECTIVES: ContextVar[str] = ContextVar("tokenhub_fake_extra_directives", default="")

S = TypeVar("S")
DirectiveError = Callable[[str, str], Exception]  # (message, code) -> the fake's own 400 error


def convert_directive(type_name: str, value: str) -> Any:
    """A directive value for a field annotated ``type_name``; ValueError when it does not fit.

    ``bool`` fields take no value; ``int`` fields a non-negative integer; ``float``
    fields a number (negatives clamp to 0); anything else the string as is.
    """
    if type_name == "bool":
        if value:
            raise ValueError
        return True
    if not value:
        raise ValueError
    if "int" in type_name:
        number = int(value)
        if number < 0:
            raise ValueError
        return number
    if "float" in type_name:
        return max(0.0, float(value))
    return value


def parse_directives(cls: Callable[[], S], text: str, error: DirectiveError) -> S:
    """The ``#fake:`` directives in ``text`` as an instance of the dataclass ``cls``.

    An unknown name or a bad value raises ``error(message, code)`` with code
    ``unknown_fake_directive`` / ``invalid_fake_directive``.
    """
    scenario = cls()
    types = {f.name: str(f.type) for f in fields(scenario)}  # type: ignore[arg-type]
    for name, value in DIRECTIVE_RE.findall(text):
        if name not in types:
            raise error(f"Unknown fake directive '#fake:{name}'.", "unknown_fake_directive")
        try:
            converted = convert_directive(types[name], value)
        except ValueError:
            raise error(f"Invalid value for fake directive '#fake:{name}': {value!r}.",
                        "invalid_fake_directive") from None
        setattr(scenario, name, converted)
    return scenario


class Directives:
    """Mixin for a Scenario dataclass: ``parse`` reads its fields from ``#fake:`` directives.

    A subclass says how its fake rejects a directive by overriding ``directive_error``.
    """

    @classmethod
    def directive_error(cls, message: str, code: str) -> Exception:
        raise NotImplementedError

    @classmethod
    def parse(cls: type[S], text: str) -> S:
        extra = EXTRA_DIRECTIVES.get()
        return parse_directives(cls, f"{text} {extra}" if extra else text, cls.directive_error)  # type: ignore[attr-defined]


def directive_names(cls: type) -> Iterator[str]:
    """Names accepted after ``#fake:`` for the Scenario dataclass ``cls`` (for CLI help)."""
    return (f.name for f in fields(cls))


# --------------------------------------------------------------------------- deterministic text


def word_pieces(words: list[str], count: int) -> list[str]:
    """`count` pieces cycling through `words`; each but the last keeps a trailing space."""
    pieces = [words[i % len(words)] + " " for i in range(count)]
    if pieces:
        pieces[-1] = pieces[-1].rstrip(" ")
    return pieces


def random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(ALNUM) for _ in range(length))


# --------------------------------------------------------------------------- malformed usage

BAD_USAGE: dict[str, Any] = {"negative": -7, "float": 12.5, "string": "12"}


def malformed_count(kind: str | None, count: int) -> Any:
    """``count`` as a fake reports it under ``#fake:bad_usage=KIND``: ``negative`` -7, ``float`` 12.5,
    ``string`` "12" (JSON text), anything else ``"bad"``; ``count`` itself without the directive."""
    if kind is None:
        return count
    return BAD_USAGE.get(kind, "bad")
