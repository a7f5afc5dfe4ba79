"""The base of the fakes' stream writers, and starting an event stream."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from tokenhub.simulator.common.disconnects import ClientGone, client_gone, sleep_unless_gone


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
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **headers,
        }
    )
    await response.prepare(request)
    return response
