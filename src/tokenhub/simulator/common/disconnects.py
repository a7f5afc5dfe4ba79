"""Client disconnects, deliberate hang-ups and the in-flight/cancelled counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from tokenhub.simulator.common.recording import TrackedState

DISCONNECT_POLL_SECONDS = 0.02
ABORTED_KEY = web.RequestKey("tokenhub_fake_aborted", bool)  # the server hangs up on purpose


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


async def tracked(
    request: web.Request, state: TrackedState[Any], is_stream: bool, run: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
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


async def serve_scenario(
    request: web.Request,
    state: TrackedState[Any],
    scenario: TimingScenario,
    is_stream: bool,
    respond: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
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
