"""A stream answer: ``chat.completion.chunk`` events framed as SSE, and its failure directives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.common.disconnects import abort_connection
from tokenhub.simulator.common.streams import EventWriter, start_event_stream
from tokenhub.simulator.common.text import ALNUM
from tokenhub.simulator.openai.completion import SYSTEM_FINGERPRINT
from tokenhub.simulator.openai.errors import mid_stream_error, success_headers
from tokenhub.simulator.openai.plan import ChoicePlan, CompletionPlan, ToolCallPlan
from tokenhub.simulator.openai.scenario import Scenario
from tokenhub.simulator.openai.state import FakeOpenAIState


@dataclass
class DeltaEvent:
    index: int
    delta: dict[str, Any]
    finish_reason: str | None = None


def tool_header_delta(call: ToolCallPlan) -> dict[str, Any]:
    arguments = "" if call.fragments else call.arguments
    return {"index": call.index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


def choice_deltas(choice: ChoicePlan, scenario: Scenario) -> list[DeltaEvent]:
    """The deltas of one choice, from the role delta to the finish delta."""
    deltas: list[dict[str, Any]] = []
    if choice.reasoning or not choice.tool_calls:
        deltas.append({"role": "assistant", "content": "", "refusal": None})
    deltas += [{"reasoning_content": piece} for piece in choice.reasoning]
    deltas += [{"content": piece} for piece in choice.content]
    for call in choice.tool_calls:
        header = {"tool_calls": [tool_header_delta(call)]}
        if not deltas:  # real OpenAI merges the role into the first tool-call delta
            header = {"role": "assistant", "content": None, **header, "refusal": None}
        deltas.append(header)
        deltas += [{"tool_calls": [{"index": call.index, "function": {"arguments": fragment}}]} for fragment in call.fragments]
    events = [DeltaEvent(choice.index, d) for d in deltas]
    if scenario.content_finish and choice.content:
        events[-1].finish_reason = choice.finish_reason
    else:
        events.append(DeltaEvent(choice.index, {}, choice.finish_reason))
    return events


def interleave(lists: list[list[DeltaEvent]]) -> list[DeltaEvent]:
    out: list[DeltaEvent] = []
    for i in range(max(len(events) for events in lists)):
        out += [events[i] for events in lists if i < len(events)]
    return out


def obfuscation(seq: int) -> str:
    """Deterministic stand-in for OpenAI's random-length `obfuscation` padding."""
    return ALNUM[seq % 13 : seq % 13 + 1 + (seq * 7) % 12]


@dataclass
class ChunkRenderer:
    plan: CompletionPlan
    include_usage: bool
    include_obfuscation: bool
    _seq: int = 0

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": self.plan.id,
            "object": "chat.completion.chunk",
            "created": self.plan.created,
            "model": self.plan.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if self.include_usage or usage is not None:
            data["usage"] = usage
        if self.include_obfuscation:
            data["obfuscation"] = obfuscation(self._seq)
        self._seq += 1
        return orjson.dumps(data)

    def delta_chunk(self, event: DeltaEvent, usage: dict[str, Any] | None = None) -> bytes:
        choice = {"index": event.index, "delta": event.delta, "logprobs": None, "finish_reason": event.finish_reason}
        return self.chunk([choice], usage)


@dataclass
class StreamScript:
    """The data payloads of a stream, split where a failure directive may strike."""

    content: list[bytes]  # role + piece chunks
    tail: list[bytes]  # finish chunk(s), usage chunk, [DONE]


def stream_script(plan: CompletionPlan, scenario: Scenario, stream_options: dict[str, Any]) -> StreamScript:
    include_usage = bool(stream_options.get("include_usage")) and not scenario.no_usage
    renderer = ChunkRenderer(plan, include_usage, stream_options.get("include_obfuscation", True) is not False)
    events = interleave([choice_deltas(c, scenario) for c in plan.choices])
    last_finish = max(i for i, e in enumerate(events) if e.finish_reason is not None)
    payloads: list[bytes] = []
    for i, event in enumerate(events):
        usage = plan.usage if include_usage and scenario.usage_on_last and i == last_finish else None
        payloads.append(renderer.delta_chunk(event, usage))
    if include_usage and not scenario.usage_on_last:
        payloads.append(renderer.chunk([], plan.usage))
    payloads.append(b"[DONE]")
    first_finish = min(i for i, e in enumerate(events) if e.finish_reason is not None)
    return StreamScript(payloads[:first_finish], payloads[first_finish:])


class SSEWriter(EventWriter):
    """Frames SSE events onto a prepared StreamResponse, noticing client disconnects."""

    def __init__(self, request: web.Request, response: web.StreamResponse, *, crlf: bool, keepalive: bool, delay: float) -> None:
        super().__init__(request, response, delay)
        self.newline = b"\r\n" if crlf else b"\n"
        self.keepalive = keepalive

    async def data(self, payload: bytes) -> None:
        await self.pace()
        nl = self.newline
        frame = b"data: " + payload + nl + nl
        if self.keepalive:
            frame = b": keep-alive" + nl + nl + frame + (nl if self.sent % 2 else b"")
        await self.write(frame)
        self.sent += 1


async def stream_response(
    request: web.Request, plan: CompletionPlan, scenario: Scenario, body: dict[str, Any], state: FakeOpenAIState
) -> web.StreamResponse:
    stream_options = body.get("stream_options") or {}
    script = stream_script(plan, scenario, stream_options if isinstance(stream_options, dict) else {})
    response = await start_event_stream(request, success_headers())
    delay = scenario.delay if scenario.delay is not None else state.token_delay
    writer = SSEWriter(request, response, crlf=scenario.crlf, keepalive=scenario.keepalive, delay=delay)
    failing = scenario.error_mid or scenario.reset or scenario.truncate
    cut = max(2, len(script.content) // 2) if failing or scenario.malformed else len(script.content)
    for payload in script.content[:cut]:
        await writer.data(payload)
    if scenario.malformed:
        await writer.data(b'{"id":"' + plan.id.encode() + b'","object":"chat.completion.chunk","choices":[{"ind')
    if scenario.error_mid:
        await writer.data(orjson.dumps(mid_stream_error()))
    elif scenario.reset:
        abort_connection(request)
        return response
    if failing:
        await response.write_eof()
        return response
    for payload in script.content[cut:] + script.tail:
        await writer.data(payload)
    await response.write_eof()
    return response
