"""The first-byte and idle timeouts of one upstream exchange, on one timer moved rather than remade.

A channel allows ``first_byte`` seconds from sending a request until the response's headers, then
``idle`` seconds for each wait on the body (not counting the time the relay spends writing to its client).
``asyncio.timeout`` for each costs ~26 k instructions a use on Python 3.11 (a ``Timeout`` object, its two
coroutines, ``current_task`` in Python, a uvloop timer made and cancelled): two a whole answer, 3.6 % of
its instructions (bench/README.md, session 16). Here one timer serves the whole exchange: moving the
deadline is setting a number, and the timer, when it fires early, re-arms for the deadline as it is then.

When the deadline passes while the headers are awaited the task is cancelled, and ``headers`` turns that
cancellation into ``TimeoutError`` unless the task was also cancelled for another reason meanwhile (its
client left, the drain's deadline came, its hold was refused): the task's cancellation count tells them
apart, as it does for ``asyncio.timeout``. While the body is awaited the read itself fails with
``TimeoutError``: nothing is cancelled.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

import aiohttp

T = TypeVar("T")


class UpstreamClock:
    def __init__(self, first_byte: float, idle: float) -> None:
        loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self._deadline: float | None = loop.time() + first_byte  # None: not waiting on the upstream now
        self._idle = idle
        self._body: aiohttp.StreamReader | None = None  # once the headers are in
        self._fired = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._arm(self._deadline)

    async def headers(self, sending: Awaitable[T]) -> T:
        """``sending`` (the request, until its response's headers), failed with ``TimeoutError`` at the deadline."""
        try:
            return await sending
        except BaseException as exc:
            self.stop()
            if isinstance(exc, asyncio.CancelledError) and self._fired and self._task.uncancel() <= self._cancelling:
                raise TimeoutError from None
            raise
        finally:
            self._deadline = None

    async def body(self, resp: aiohttp.ClientResponse) -> bytes:
        """The whole body, each wait on it within ``idle``."""
        self._body = resp.content
        self._wait_until(self._loop.time() + self._idle)
        try:
            return await resp.read()
        finally:
            self.stop()

    def chunks(self, resp: aiohttp.ClientResponse) -> UpstreamClock:
        """The body as it arrives (``async for``), each wait on it within ``idle`` (the time the caller spends
        on a chunk does not count). The clock is its own iterator, so that it compiles (mypyc compiles no
        async generator); its end stops it, and a caller that leaves early stops it itself."""
        self._body = resp.content
        self._wait_until(self._loop.time() + self._idle)
        return self

    def __aiter__(self) -> UpstreamClock:
        return self

    async def __anext__(self) -> bytes:
        body = self._body
        assert body is not None, "chunks() first"
        if self._deadline is None:  # the first wait's was set by chunks()
            self._deadline = self._loop.time() + self._idle
        try:
            chunk = await body.readany()
        except aiohttp.EofStream:
            chunk = b""
        finally:
            self._deadline = None
        if not chunk:
            self.stop()
            raise StopAsyncIteration
        return chunk

    def stop(self) -> None:
        """The exchange is over: the timer goes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wait_until(self, deadline: float) -> None:
        """The body's first wait: its deadline may come before the timer (an idle timeout shorter than what
        was left of the first byte's), which then moves; later waits only move the deadline later."""
        self._deadline = deadline
        if deadline < self._timer_at and self._timer is not None:
            self._timer.cancel()
            self._arm(deadline)

    def _arm(self, at: float) -> None:
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._check)

    def _check(self) -> None:
        deadline = self._deadline
        now = self._loop.time()
        if deadline is None or now < deadline:  # not waiting now, or the deadline moved: look again then
            self._arm(now + self._idle if deadline is None else deadline)
            return
        self._timer = None
        self._fired = True
        if self._body is None:
            self._task.cancel()
        else:
            self._body.set_exception(asyncio.TimeoutError())
