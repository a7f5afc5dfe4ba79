"""The requests this process is serving, so that two events can reach a relay call wherever it waits.

Every request is registered for its duration (a middleware of the app). A relay call also asks to
be *watched* once its hold is taken: from then on its task may be cancelled, and the relay turns
that cancellation into the right ending — settled exactly once in its ``finally``:

* **the client left** — every ``POLL`` seconds the watched calls whose client connection has closed
  are cancelled, so the upstream call is closed and the hold and the rate slot are released within
  a second, instead of when the upstream answers or times out;
* **the drain's deadline** (SIGTERM) — ``drain`` waits until every request has ended or the
  deadline has passed, then sets ``cut_off`` and cancels the watched calls still open: the relay
  answers a call still waiting for the upstream with a 503, ends a stream with an error event in
  its protocol and charges what was delivered. Other requests are left to the server's own short
  shutdown timeout.

The relay tells the two apart by ``cut_off``. Cost on the request path: one dict entry per request
and one set entry per relay call; the watcher is one timer for the whole process.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from aiohttp import web

from tokenhub.errors import ServiceUnavailable
from tokenhub.periodic import Periodic

POLL = 0.25  # seconds between two looks at the watched calls' client connections
CUT_GRACE = 3.0  # seconds the cut calls get to write their error endings and settle

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def shutting_down() -> ServiceUnavailable:
    return ServiceUnavailable("the gateway is shutting down; send the request again", code="shutting_down")


def uncancel() -> None:
    """The current task's cancellation was turned into an answer: it is no longer being cancelled."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class InFlight:
    def __init__(self) -> None:
        self._requests: dict[asyncio.Task[Any], web.Request] = {}
        self._watched: set[asyncio.Task[Any]] = set()
        self._watcher = Periodic("disconnect watch", POLL, self._sweep)
        self.cut_off = False  # the drain's deadline passed: watched calls are being cut

    def start(self) -> None:
        self._watcher.start()

    async def stop(self) -> None:
        await self._watcher.stop()

    def __len__(self) -> int:
        return len(self._requests)

    async def serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run ``handler`` as a registered request (the app's middleware)."""
        task = asyncio.current_task()
        assert task is not None
        self._requests[task] = request
        try:
            return await handler(request)
        finally:
            del self._requests[task]
            self._watched.discard(task)

    def watch(self) -> None:
        """The relay's call, once its hold is taken: cancel this request's task if its client leaves
        or the drain's deadline comes. Past the deadline, a new call is refused (503) instead."""
        if self.cut_off:
            raise shutting_down()
        task = asyncio.current_task()
        if task in self._requests:
            self._watched.add(task)  # type: ignore[arg-type]

    async def _sweep(self) -> None:
        for task in [t for t in self._watched if _client_gone(self._requests[t])]:
            self._watched.discard(task)
            task.cancel()

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every request to end; then cut the relay calls still open."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._requests and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(self._requests), timeout=left)
        self.cut_off = True
        cut = list(self._watched)
        self._watched.clear()
        for task in cut:
            task.cancel()
        if cut:
            await asyncio.wait(cut, timeout=CUT_GRACE)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
