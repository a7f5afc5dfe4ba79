"""Answering a client that speaks OpenAI Responses (``POST /api/v1/responses``).

Every upstream goes through ``ResponsesChunkPipe``: the upstream reader's OpenAI chunks become the
Responses event sequence (``writer.py``); a whole chat completion becomes a response object
(``items.py``). The final response object is kept on the responder (``final``) for the route to
store. On an OpenAI channel that speaks Responses the client's own body goes upstream and the events
come back as bytes (``passthrough.py``).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tokenhub.errors import GatewayError
from tokenhub.providers.base import Meter, StreamReader
from tokenhub.providers.client import CostText, Responder
from tokenhub.providers.responses.items import ResponseShape, output_items, status_of, usage_block
from tokenhub.providers.responses.passthrough import ResponsesBytePipe
from tokenhub.providers.responses.upstream import NativeCompletion, ResponsesAdapter
from tokenhub.providers.responses.writer import ResponsesStreamWriter
from tokenhub.sse import Event
from tokenhub.tokens import Usage
from tokenhub.upstream import Channel


class ResponsesChunkPipe:
    def __init__(self, responder: ResponsesResponder, reader: StreamReader, meter: Meter, cost_text: CostText, channel: Channel) -> None:
        self._responder = responder
        self._reader = reader
        self._meter = meter
        self._channel = channel
        responder.shape.model = responder.client_model  # a fallback model may answer
        self._writer = ResponsesStreamWriter(responder.shape)

    def feed(self, event: Event) -> bytes:
        reader = self._reader
        chunks = reader.chunks(reader.read(event))
        return self._writer.chunks(chunks) if chunks else b""

    def close(self) -> bytes:
        chunks = self._reader.close()
        return self._writer.chunks(chunks) if chunks else b""

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        out, self._responder.final = self._writer.finish(usage_block(usage, cost_text), self._meter.finish_reason)
        return out

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        if isinstance(err, GatewayError):
            return self._writer.fail(err.code or "upstream_error", self._channel.redact(err.message))
        return self._writer.fail(str(err.get("code") or "upstream_error"), self._channel.redact(str(err.get("message") or "")))


class ResponsesResponder(Responder):
    endpoint = "responses"
    passthrough = {ResponsesAdapter: ResponsesBytePipe}
    translating = ResponsesChunkPipe

    def __init__(self, client_model: str, shape: ResponseShape) -> None:
        self.client_model = client_model
        self.shape = shape
        self.final: dict[str, Any] | None = None  # the finished response object, once answered

    def completion(self, body: dict[str, Any], usage: Usage, cost_text: str) -> web.Response:
        native = body.native if isinstance(body, NativeCompletion) else None  # the channel's own Responses object (pass-through)
        if native is not None:
            native.update(model=self.client_model, previous_response_id=self.shape.previous, store=self.shape.store)
            native["usage"] = usage_block(usage, cost_text) if usage.estimated or not isinstance(native.get("usage"), dict) else \
                {**native["usage"], "cost": orjson.Fragment(cost_text.encode())}  # fmt: skip
            self.final = native
            return web.Response(body=orjson.dumps(native), content_type="application/json")
        choices = body.get("choices") or [{}]
        message = choices[0].get("message") or {}
        self.shape.model = self.client_model
        status, incomplete = status_of(choices[0].get("finish_reason"))
        self.final = self.shape.response(status, output_items(message), usage_block(usage, cost_text), incomplete)
        return web.Response(body=orjson.dumps(self.final), content_type="application/json")
