"""A Responses client on an OpenAI channel that speaks Responses: its own body upstream, the events back as bytes.

Upstream the client's body goes as it is but for ``model``, the held ``max_output_tokens``, ``store:
false`` (the gateway keeps the conversation itself) and ``input``: the stored conversation of
``previous_response_id`` first, then this request's items — item ids dropped (with ``store: false``
OpenAI resolves no id) except on reasoning items, which travel with their ``encrypted_content``;
reasoning items without it (made by a translated upstream) are left out. Back, each event is relayed
as it came, ``model`` rewritten; ``response.completed`` / ``response.incomplete`` is re-serialised
with ``usage.cost`` and kept as the response to store.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenhub.errors import GatewayError
from tokenhub.providers.base import MODEL_FIELD, Meter, StreamReader, UpstreamRequest
from tokenhub.providers.client import CostText
from tokenhub.providers.responses.upstream import upstream_request
from tokenhub.providers.responses.writer import ResponsesStreamWriter
from tokenhub.sse import Event
from tokenhub.tokens import Usage
from tokenhub.upstream import Channel, Route

FINAL = (b"response.completed", b"response.incomplete")
MODEL_EVENTS = (b"response.created", b"response.in_progress", b"response.failed")


def native_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if item.get("type") == "reasoning":
            if item.get("encrypted_content"):
                out.append(item)
            continue
        out.append({k: v for k, v in item.items() if k not in ("id", "status")})
    return out


class ResponsesClientRequest:
    def __init__(self, body: dict[str, Any], items: list[dict[str, Any]], stream: bool) -> None:
        self.body = body
        self.items = items  # the stored conversation, then this request's input
        self.stream = stream

    def native(self, route: Route, max_output: int) -> UpstreamRequest:
        body = {k: v for k, v in self.body.items() if k not in ("previous_response_id", "metadata")}
        body.update(model=route.upstream_id, input=native_items(self.items), store=False, max_output_tokens=max_output)
        return upstream_request(body, route.channel, stream=self.stream, max_output=max_output)

    def translated(self) -> None:
        pass  # every Responses request also translates to chat


class ResponsesBytePipe:
    def __init__(self, responder: Any, reader: StreamReader, meter: Meter, cost_text: CostText, channel: Channel) -> None:
        self._responder = responder
        self._reader = reader
        self._meter = meter
        self._cost_text = cost_text
        self._channel = channel
        self._model_json = b'"model":' + orjson.dumps(responder.client_model)
        self._tail = ResponsesStreamWriter(responder.shape)  # only for an error the gateway itself ends the stream with

    def feed(self, event: Event) -> bytes:
        obj = self._reader.read(event)
        name = event.name or b""
        data = event.data
        if obj is None:
            return b"event: " + name + b"\ndata: " + data + b"\n\n" if name in (b"error", b"response.failed") else b""
        if name in FINAL and isinstance(obj.get("response"), dict):
            response = obj["response"]
            response["model"] = self._responder.client_model
            response["previous_response_id"] = self._responder.shape.previous
            response["store"] = self._responder.shape.store
            if self._meter.usage is not None and isinstance(response.get("usage"), dict):
                response["usage"]["cost"] = orjson.Fragment(self._cost_text(self._meter.usage).encode())
            self._responder.final = response
            data = orjson.dumps(obj)
        elif name in MODEL_EVENTS:
            data = MODEL_FIELD.sub(lambda _m: self._model_json, data, count=1)
        return b"event: " + name + b"\ndata: " + data + b"\n\n"

    def close(self) -> bytes:
        return b""

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        return b""  # response.completed came from the upstream

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        if isinstance(err, GatewayError):
            return self._tail.fail(err.code or "upstream_error", self._channel.redact(err.message))
        return b""  # the upstream's own error event was relayed
