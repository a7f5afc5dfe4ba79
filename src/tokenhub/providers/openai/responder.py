"""Answering a client that speaks OpenAI Chat Completions.

A responder turns what the relay got from the upstream — a ``Completion``, or a stream of SSE
events — into the client's protocol. Streams go through a *pipe*: ``feed`` an upstream event, get
the bytes to send. Two pipes exist here:

* ``OpenAIBytePipe``: the upstream speaks OpenAI too, so each event's payload is forwarded as it
  came (``model`` rewritten in place; the usage event gains ``cost``) — no re-serialising;
* ``ChunkPipe``: any other upstream; its adapter's ``ChunkStream`` yields OpenAI chunk dicts, which
  are serialised here.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson
from aiohttp import web

from tokenhub.billing.cost import Usage
from tokenhub.billing.estimate import estimate_tokens
from tokenhub.errors import GatewayError
from tokenhub.providers.base import ChatAdapter, ChunkStream
from tokenhub.providers.openai.stream import StreamMeter
from tokenhub.providers.openai.wire import collect_text, error_event, usage_object, with_cost
from tokenhub.sse import DONE, Event, frame
from tokenhub.upstream import Channel

CostText = Callable[[Usage], str]
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class OpenAIResponder:
    sse_headers = SSE_HEADERS
    endpoint = "chat"

    def __init__(self, client_model: str, include_usage: bool) -> None:
        self.client_model = client_model
        self.include_usage = include_usage

    def completion(self, body: dict[str, Any], usage: Usage, cost_text: str) -> web.Response:
        body["model"] = self.client_model
        body["usage"] = with_cost(body.get("usage"), usage, cost_text)
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def pipe(self, adapter: ChatAdapter, cost_text: CostText, channel: Channel) -> "OpenAIBytePipe | ChunkPipe":
        if adapter.protocol == "openai":
            return OpenAIBytePipe(self, cost_text, channel)
        return ChunkPipe(self, adapter.chunk_stream(self.client_model), cost_text, channel)

    def error_event(self, err: GatewayError | dict[str, Any], channel: Channel) -> bytes:
        return error_event(err, channel)


class OpenAIBytePipe:
    def __init__(self, responder: OpenAIResponder, cost_text: CostText, channel: Channel) -> None:
        self._meter = StreamMeter(responder.client_model, responder.include_usage)
        self._responder = responder
        self._cost_text = cost_text
        self._channel = channel

    @property
    def usage(self) -> Usage | None:
        return self._meter.usage

    @property
    def finish_reason(self) -> str | None:
        return self._meter.finish_reason

    @property
    def error(self) -> dict[str, Any] | None:
        return self._meter.error

    @property
    def finished(self) -> bool:
        return self._meter.finished

    def feed(self, event: Event) -> bytes:
        return self._meter.on_data(event.data, self._cost_text) or b""

    def close(self) -> bytes:
        return b""

    def delivered_tokens(self) -> int:
        return self._meter.delivered_tokens()

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        tail = b""
        if self._responder.include_usage and not self._meter.usage_sent:
            tail = self._meter.final_usage_chunk(usage, cost_text)
        return tail + DONE

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        return self._responder.error_event(err, self._channel)


class StreamFacts:
    """What a pipe over an adapter's ``ChunkStream`` knows of the upstream: the stream's own facts."""

    _stream: ChunkStream

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage

    @property
    def finish_reason(self) -> str | None:
        return self._stream.finish_reason

    @property
    def error(self) -> dict[str, Any] | None:
        return self._stream.error

    @property
    def finished(self) -> bool:
        return self._stream.finished


class ChunkPipe(StreamFacts):
    """OpenAI chunk dicts from a translating adapter, serialised for an OpenAI client."""

    def __init__(self, responder: OpenAIResponder, stream: ChunkStream, cost_text: CostText, channel: Channel) -> None:
        self._stream = stream
        self._responder = responder
        self._channel = channel
        self._pieces: list[str] = []
        self._first: dict[str, Any] | None = None

    def feed(self, event: Event) -> bytes:
        return self._encode(self._stream.feed(event))

    def close(self) -> bytes:
        return self._encode(self._stream.close())

    def _encode(self, chunks: list[dict[str, Any]]) -> bytes:
        if not chunks:
            return b""
        if self._first is None:
            self._first = chunks[0]
        out = []
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                collect_text(delta, self._pieces)
            out.append(frame(orjson.dumps(chunk)))
        return b"".join(out)

    def delivered_tokens(self) -> int:
        return estimate_tokens("".join(self._pieces))

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        if not self._responder.include_usage:
            return DONE
        first = self._first or {}
        chunk = {
            "id": first.get("id"),
            "object": "chat.completion.chunk",
            "created": first.get("created"),
            "model": self._responder.client_model,
            "choices": [],
            "usage": usage_object(usage, cost_text),
        }
        return frame(orjson.dumps(chunk)) + DONE

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        return self._responder.error_event(err, self._channel)
