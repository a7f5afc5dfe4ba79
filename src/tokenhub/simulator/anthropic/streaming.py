"""A stream answer: ``event:``/``data:`` SSE events, pings, and its failure directives."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.anthropic.blocks import MessagePlan
from tokenhub.simulator.anthropic.errors import MID_STREAM_ERROR, success_headers
from tokenhub.simulator.anthropic.scenario import Scenario
from tokenhub.simulator.anthropic.state import FakeAnthropicState
from tokenhub.simulator.common.disconnects import abort_connection
from tokenhub.simulator.common.streams import EventWriter, start_event_stream


def stream_events(plan: MessagePlan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(head, tail): message_start + block events, then the closing events.

    ``head`` is where failure directives strike; block stop events of the last
    block are in ``head`` too, so ``tail`` is message_delta + message_stop.
    """
    start_message = {
        "id": plan.id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": plan.start_usage(),
    }
    head: list[dict[str, Any]] = [{"type": "message_start", "message": start_message}]
    for index, block in enumerate(plan.blocks):
        head.append({"type": "content_block_start", "index": index, "content_block": block.start()})
        if index == 0:
            head.append({"type": "ping"})
        head += [{"type": "content_block_delta", "index": index, "delta": d} for d in block.deltas()]
        head.append({"type": "content_block_stop", "index": index})
    delta: dict[str, Any] = {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence}
    if (details := plan.stop_details()) is not None:
        delta["stop_details"] = details
    tail = [{"type": "message_delta", "delta": delta, "usage": plan.delta_usage()}, {"type": "message_stop"}]
    return head, tail


PING_DATA = b'{"type": "ping"}'  # the real API's exact bytes, note the space


class SSEWriter(EventWriter):
    """Frames ``event:``/``data:`` SSE events onto a prepared StreamResponse."""

    def __init__(self, request: web.Request, response: web.StreamResponse, *, crlf: bool, ping: bool, delay: float) -> None:
        super().__init__(request, response, delay)
        self.newline = b"\r\n" if crlf else b"\n"
        self.ping = ping

    def frame(self, name: str, payload: bytes) -> bytes:
        nl = self.newline
        return b"event: " + name.encode() + nl + b"data: " + payload + nl + nl

    async def event(self, event: dict[str, Any]) -> None:
        await self.pace()
        name = event["type"]
        payload = PING_DATA if name == "ping" else orjson.dumps(event)
        data = self.frame(name, payload)
        if self.ping and self.sent and name != "ping":
            data = self.frame("ping", PING_DATA) + data
        await self.write(data)
        self.sent += 1


async def stream_response(
    request: web.Request, plan: MessagePlan, scenario: Scenario, state: FakeAnthropicState
) -> web.StreamResponse:
    head, tail = stream_events(plan)
    response = await start_event_stream(request, success_headers())
    delay = scenario.delay if scenario.delay is not None else state.token_delay
    writer = SSEWriter(request, response, crlf=scenario.crlf, ping=scenario.ping, delay=delay)
    failing = scenario.error_mid or scenario.reset or scenario.truncate
    cut = max(3, len(head) // 2) if failing else len(head)
    for event in head[:cut]:
        await writer.event(event)
    if scenario.error_mid:
        await writer.event(MID_STREAM_ERROR)
    elif scenario.reset:
        abort_connection(request)
        return response
    if failing:
        await response.write_eof()
        return response
    for event in head[cut:] + tail:
        await writer.event(event)
    await response.write_eof()
    return response
