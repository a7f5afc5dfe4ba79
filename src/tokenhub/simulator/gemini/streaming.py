"""The stream and non-stream answers: SSE or Google's JSON-array stream, and the failure directives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tokenhub.simulator.common.disconnects import ClientGone, abort_connection
from tokenhub.simulator.common.streams import EventWriter
from tokenhub.simulator.gemini.errors import compact_json, mid_stream_error, pretty_json
from tokenhub.simulator.gemini.response import Plan, envelope, make_candidate, render_response, usage_metadata
from tokenhub.simulator.gemini.scenario import Scenario
from tokenhub.simulator.gemini.state import FakeGeminiState


@dataclass
class Delta:
    parts: list[dict[str, Any]] | None
    candidates: int  # cumulative candidate tokens after this event
    thoughts: int  # cumulative thought tokens after this event


def stream_events(plan: Plan) -> list[dict[str, Any]]:
    """Every event of a complete stream; the last one carries finishReason."""
    deltas = stream_deltas(plan)
    return [render_event(plan, delta, final=i == len(deltas) - 1) for i, delta in enumerate(deltas)]


def stream_deltas(plan: Plan) -> list[Delta]:
    if plan.blocked_prompt:
        return [Delta(None, 0, 0)]
    deltas: list[Delta] = []
    thoughts = 0 if plan.show_thoughts else len(plan.thoughts)
    if plan.show_thoughts:
        for piece in plan.thoughts:
            thoughts += 1
            deltas.append(Delta([{"text": piece, "thought": True}], 0, thoughts))
    candidates = 0
    if plan.calls:
        deltas.append(Delta(plan.calls, len(plan.calls), thoughts))
        return deltas
    for piece in plan.text:
        candidates += 1
        deltas.append(Delta([{"text": piece}], candidates, thoughts))
    if plan.drop_content_at_end:
        deltas.append(Delta(None, candidates, thoughts))
    elif plan.signature:
        deltas.append(Delta([{"text": "", "thoughtSignature": plan.signature}], candidates, thoughts))
    elif not plan.text:
        deltas.append(Delta([{"text": ""}], candidates, thoughts))
    return deltas


def render_event(plan: Plan, delta: Delta, final: bool) -> dict[str, Any]:
    usage = usage_metadata(plan, delta.candidates, delta.thoughts)
    if plan.blocked_prompt:
        return envelope(plan, None, usage)
    return envelope(plan, make_candidate(delta.parts, plan if final else None), usage)


class StreamWriter(EventWriter):
    """Frames events as SSE or as Google's JSON-array stream, noticing client disconnects."""

    def __init__(self, request: web.Request, response: web.StreamResponse, *, sse: bool, lf: bool, delay: float) -> None:
        super().__init__(request, response, delay)
        self.sse = sse
        self.separator = b"\n\n" if lf else b"\r\n\r\n"

    async def event(self, obj: dict[str, Any]) -> None:
        await self.pace()
        if self.sse:
            frame = b"data: " + compact_json(obj) + self.separator
        else:
            frame = (b"[" if not self.sent else b"\n,\r\n") + pretty_json(obj).rstrip(b"\n")
        await self.write(frame)
        self.sent += 1

    async def finish(self) -> None:
        if not self.sse:
            await self.write(b"\n]" if self.sent else b"[]")
        await self.response.write_eof()


def common_headers(content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Vary": "Origin, X-Origin, Referer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "X-XSS-Protection": "0",
    }


async def stream_response(
    request: web.Request, plan: Plan, scenario: Scenario, sse: bool, state: FakeGeminiState
) -> web.StreamResponse:
    events = stream_events(plan)
    content_type = "text/event-stream" if sse else "application/json; charset=UTF-8"
    headers = common_headers(content_type)
    if sse:
        headers["Content-Disposition"] = "attachment"
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    delay = scenario.delay if scenario.delay is not None else state.token_delay
    writer = StreamWriter(request, response, sse=sse, lf=scenario.lf, delay=delay)
    failing = scenario.error_mid or scenario.reset or scenario.truncate
    if not failing:
        for event in events:
            await writer.event(event)
        await writer.finish()
        return response
    deltas = stream_deltas(plan)
    cut = max(1, len(deltas) // 2) if len(deltas) > 1 else 1
    for delta in deltas[:cut]:
        await writer.event(render_event(plan, delta, final=False))
    if scenario.error_mid:
        await writer.event(mid_stream_error())
        await writer.finish()
    elif scenario.reset:
        abort_connection(request)
    else:  # truncate: a clean end without a finishReason
        await writer.finish()
    return response


async def json_response(request: web.Request, plan: Plan, scenario: Scenario) -> web.StreamResponse:
    if scenario.reset:
        abort_connection(request)
        raise ClientGone  # nothing more to send; not counted as a client cancellation
    payload = pretty_json(mid_stream_error() if scenario.error_mid else render_response(plan))
    if scenario.truncate:
        payload = payload[: len(payload) // 2]
    return web.Response(body=payload, headers=common_headers("application/json; charset=UTF-8"))
