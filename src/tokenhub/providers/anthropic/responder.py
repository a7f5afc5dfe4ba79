"""Answering a client that speaks Anthropic Messages (``POST /api/v1/messages``).

Two pipes, as for OpenAI clients:

* ``AnthropicBytePipe``, the pass-through: the upstream is Anthropic itself, so its events are
  relayed as they came (only ``model`` in ``message_start`` rewritten); the reader meters them;
* ``AnthropicChunkPipe``: any other upstream; its reader's OpenAI chunks become Anthropic's event
  sequence through ``AnthropicStreamWriter``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tokenhub.errors import GatewayError
from tokenhub.providers.anthropic.adapter import AnthropicAdapter
from tokenhub.providers.anthropic.message import anthropic_usage, cost_fragment, error_body, to_anthropic_message
from tokenhub.providers.anthropic.writer import AnthropicStreamWriter
from tokenhub.providers.base import MODEL_FIELD, Meter, StreamReader
from tokenhub.providers.client import CostText, Responder
from tokenhub.sse import Event
from tokenhub.tokens import Usage
from tokenhub.upstream import Channel


def error_event(status: int, message: str) -> bytes:
    return b"event: error\ndata: " + orjson.dumps(error_body(status, message)) + b"\n\n"


def error_tail(err: GatewayError | dict[str, Any], channel: Channel) -> bytes:
    """An ``error`` event ending a stream cut short (529 for an upstream overloaded, else the error's status or 500)."""
    if isinstance(err, GatewayError):
        return error_event(err.status, channel.redact(err.message))
    status = 529 if "overloaded" in str(err.get("type") or "") else 500
    return error_event(status, channel.redact(str(err.get("message") or "the upstream reported an error")))


class AnthropicBytePipe:
    """Anthropic upstream, Anthropic client: the events as they came, ``model`` rewritten in ``message_start``;
    ``message_delta``, whose usage is the answer's last, is re-serialised with our ``usage.cost``."""

    def __init__(
        self, responder: AnthropicResponder, reader: StreamReader, meter: Meter, cost_text: CostText, channel: Channel
    ) -> None:
        self._reader = reader
        self._meter = meter
        self._cost_text = cost_text
        self._channel = channel
        self._model_json = b'"model":' + orjson.dumps(responder.client_model)

    def feed(self, event: Event) -> bytes:
        obj = self._reader.read(event)
        if obj is None:  # an error event: the relay ends the stream with its own
            return b""
        kind = obj.get("type")
        data = event.data
        if kind == "message_start":
            data = MODEL_FIELD.sub(lambda _m: self._model_json, data, count=1)
        elif kind == "message_delta" and self._meter.usage is not None and isinstance(obj.get("usage"), dict):
            obj["usage"]["cost"] = cost_fragment(self._cost_text(self._meter.usage))  # what the meter will charge
            data = orjson.dumps(obj)
        name = event.name or (kind.encode() if isinstance(kind, str) else b"message")
        return b"event: " + name + b"\ndata: " + data + b"\n\n"

    def close(self) -> bytes:
        return b""

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        return b""  # message_stop came from the upstream

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        return error_tail(err, self._channel)


class AnthropicChunkPipe:
    """Any other upstream: its reader's OpenAI chunks, as Anthropic's event sequence."""

    def __init__(
        self, responder: AnthropicResponder, reader: StreamReader, meter: Meter, cost_text: CostText, channel: Channel
    ) -> None:
        self._reader = reader
        self._meter = meter
        self._channel = channel
        self._writer = AnthropicStreamWriter(responder.client_model, responder.message_id, tool_names=responder.tool_names)
        self._input_tokens = responder.input_tokens
        self._started = False

    def _encode(self, chunks: list[dict[str, Any]]) -> bytes:
        if not chunks:
            return b""
        head = b""
        if not self._started:
            self._started = True
            head = self._writer.start(self._input_tokens)
        return head + self._writer.chunks(chunks)

    def feed(self, event: Event) -> bytes:
        reader = self._reader
        return self._encode(reader.chunks(reader.read(event)))

    def close(self) -> bytes:
        return self._encode(self._reader.close())

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        head = b"" if self._started else self._writer.start(self._input_tokens)
        return head + self._writer.finish(usage, self._meter.finish_reason, cost_text)

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        return error_tail(err, self._channel)


class AnthropicResponder(Responder):
    endpoint = "messages"
    passthrough = {AnthropicAdapter: AnthropicBytePipe}
    translating = AnthropicChunkPipe

    def __init__(
        self, client_model: str, message_id: str, *, tool_names: dict[str, str] | None = None, input_tokens: int = 0
    ) -> None:
        self.client_model = client_model
        self.message_id = message_id
        self.tool_names = tool_names or {}  # shortened upstream tool name -> the client's name
        self.input_tokens = input_tokens  # the estimate message_start reports (message_delta has the real count)

    def completion(self, body: dict[str, Any], usage: Usage, cost_text: str) -> web.Response:
        native = getattr(body, "message", None)  # an Anthropic upstream's own message (pass-through)
        if isinstance(native, dict):
            message = {**native, "model": self.client_model}
            if usage.estimated or not isinstance(message.get("usage"), dict):  # missing or malformed: what was charged
                message["usage"] = anthropic_usage(usage)
            message["usage"] = {**message["usage"], "cost": cost_fragment(cost_text)}
            return web.Response(body=orjson.dumps(message), content_type="application/json")
        message = to_anthropic_message(body, usage, self.client_model, self.message_id, tool_names=self.tool_names)
        message["usage"]["cost"] = cost_fragment(cost_text)
        return web.Response(body=orjson.dumps(message), content_type="application/json")
