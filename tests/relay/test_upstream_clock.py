"""One upstream exchange's first-byte and idle timeouts on one timer (relay/upstream_clock.py): a timeout
is told from any other cancellation, the body's waits are timed and the writes between them are not,
and nothing fires once the exchange is over."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tests.support.servers import ServerThread
from tokenhub.relay.upstream_clock import UpstreamClock


def test_headers_that_never_come_end_in_a_timeout_and_leave_the_task_uncancelled():
    async def main() -> None:
        clock = UpstreamClock(first_byte=0.05, idle=10)
        with pytest.raises(TimeoutError):
            await clock.headers(asyncio.sleep(5))
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        await asyncio.sleep(0.1)  # nothing else fires: the clock stopped with the timeout

    asyncio.run(main())


def test_another_cancellation_stays_a_cancellation_even_at_the_deadline():
    """A client that left (or a refused hold) cancels the task: that is not the upstream's timeout, even if
    the deadline passes in the same moment."""

    async def waits(first_byte: float, cancel_after: float) -> None:
        me = asyncio.current_task()
        assert me is not None
        clock = UpstreamClock(first_byte=first_byte, idle=10)
        asyncio.get_running_loop().call_later(cancel_after, me.cancel)
        await clock.headers(asyncio.sleep(5))

    async def main() -> None:
        for first_byte, cancel_after in ((5, 0.02), (0.05, 0.05)):  # cancelled long before the deadline; at it
            with pytest.raises(asyncio.CancelledError):
                await asyncio.ensure_future(waits(first_byte, cancel_after))

    asyncio.run(main())


def test_headers_in_time_then_a_body_whose_waits_are_timed_and_writes_not():
    """The body's chunks arrive 0.15 s apart, within the 0.3 s idle timeout; the caller spends 0.5 s on
    each (writing to its client, say): no timeout. A body that stalls for 0.6 s times out after 0.3 s."""

    async def chunks(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for _ in range(3):
            await response.write(b"x" * 10)
            await asyncio.sleep(0.6 if request.query.get("stall") else 0.15)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", chunks)
    server = ServerThread(app).start()

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            clock = UpstreamClock(first_byte=1, idle=0.3)
            resp = await clock.headers(session.get(server.url))
            await asyncio.sleep(0.5)  # between the headers and the body: not waiting on the upstream
            got = []
            async for chunk in clock.chunks(resp):
                got.append(chunk)
                await asyncio.sleep(0.5)  # the caller's own time: not counted
            assert b"".join(got) == b"x" * 30
            resp.release()

            # An idle timeout shorter than what is left of the first byte's: the body's wait ends at it.
            clock = UpstreamClock(first_byte=30, idle=0.3)
            resp = await clock.headers(session.get(server.url + "?stall=1"))
            started = asyncio.get_running_loop().time()
            with pytest.raises(asyncio.TimeoutError):
                await clock.body(resp)
            assert asyncio.get_running_loop().time() - started < 0.55  # the first chunk, then 0.3 s of silence
            resp.close()

    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_a_stopped_clock_never_fires():
    async def main() -> None:
        clock = UpstreamClock(first_byte=0.02, idle=0.02)
        clock.stop()
        await asyncio.sleep(0.1)  # past both deadlines: the task is not cancelled
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0

    asyncio.run(main())
