"""When a request arrived, for the processing-time headers some fakes send."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STARTED_KEY = web.RequestKey("tokenhub_fake_started", float)


@web.middleware
async def stamp_start(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Remember when the request arrived (``STARTED_KEY``), for processing-time headers."""
    request[STARTED_KEY] = time.monotonic()
    return await handler(request)


def elapsed_ms(request: web.Request) -> int:
    """Whole milliseconds since ``stamp_start`` saw the request (0 when it did not)."""
    started = request.get(STARTED_KEY, time.monotonic())
    return int((time.monotonic() - started) * 1000)
