"""Answering a client that speaks OpenAI Chat Completions (``/api/v1/chat/completions``).

Two pipes:

* ``OpenAIBytePipe``, the pass-through: the upstream speaks OpenAI too, so each event's payload is
  forwarded as it came (``model`` rewritten in place; the usage event gains ``cost``, or is dropped
  for a client that did not ask for usage) — no re-serialising;
* ``ChunkPipe``: any other upstream; its reader's OpenAI chunk dicts are serialised here.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from tokenhub.errors import GatewayError
from tokenhub.providers.base import MODEL_FIELD, Meter, StreamReader
from tokenhub.providers.client import CostText, Responder
from tokenhub.providers.openai.adapter import OpenAIAdapter
from tokenhub.providers.openai.stream import OpenAIStreamReader
from tokenhub.providers.openai.wire import error_event, read_usage, usage_object, with_cost
from tokenhub.sse import DONE, Event, frame
from tokenhub.tokens import Usage
from tokenhub.upstream import Channel


class ChunkPipe:
    """OpenAI chunk dicts from a translating reader, serialised for an OpenAI client."""

    def __init__(self, responder: OpenAIResponder, reader: StreamReader, meter: Meter, cost_text: CostText, channel: Channel) -> None:
        self._reader = reader
        self._responder = responder
        self._channel = channel
        self._first: dict[str, Any] | None = None

    def feed(self, event: Event) -> bytes:
        reader = self._reader
        return self._encode(reader.chunks(reader.read(event)))

    def close(self) -> bytes:
        return self._encode(self._reader.close())

    def _encode(self, chunks: list[dict[str, Any]]) -> bytes:
        if not chunks:
            return b""
        if self._first is None:
            self._first = chunks[0]
        if self._responder.exclude_reasoning:
            chunks = [chunk for chunk in chunks if without_reasoning(chunk, "delta")]
        return b"".join([frame(orjson.dumps(chunk)) for chunk in chunks])

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        if not self._responder.include_usage:
            return DONE
        first = self._first or {}
        return usage_chunk(first.get("id"), first.get("created"), self._responder.client_model, usage, cost_text) + DONE

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        return error_event(err, self._channel)


class OpenAIBytePipe:
    """OpenAI upstream, OpenAI client: each payload's bytes as they came, ``model`` rewritten in place;
    only the usage event is re-serialised (it gains ``cost``)."""

    def __init__(self, responder: OpenAIResponder, reader: StreamReader, meter: Meter, cost_text: CostText, channel: Channel) -> None:
        if not isinstance(reader, OpenAIStreamReader):  # ``passthrough`` pairs this pipe with OpenAIAdapter alone
            raise TypeError(f"OpenAIBytePipe reads an OpenAI stream, not {type(reader).__name__}")
        self._reader = reader  # its own type: compiled, reading an event is a native call returning a dict
        self._cost_text = cost_text
        self._channel = channel
        self._client_model = responder.client_model
        self._model_json = b'"model":' + orjson.dumps(responder.client_model)
        self._include_usage = responder.include_usage
        self._exclude_reasoning = responder.exclude_reasoning
        self._usage_sent = False
        self._upstream_field: bytes | None = None  # the upstream's `"model": "..."`, as its chunks spell it
        self._field_at = 0  # where in them
        self._first: bytes | None = None  # the first payload: its id and time name a usage chunk the gateway writes

    def feed(self, event: Event) -> bytes:
        data = event.data
        if self._first is None:
            self._first = data
        reasoning = self._exclude_reasoning and data.find(b'"reasoning') >= 0
        if not reasoning and self._reader.skim(data):  # most chunks: as they came, but for the model's name
            return self._as_it_came(data)
        obj = self._reader.read(event)
        if obj is None:  # [DONE] (the ending sends it) or an error (the relay ends the stream)
            return b""
        raw_usage = obj.get("usage")
        if reasoning:
            if not without_reasoning(obj, "delta"):
                return b""
            if raw_usage is None:
                obj["model"] = self._client_model
                return frame(orjson.dumps(obj))
        if raw_usage is None:  # the payload as it came, but for the model's name
            return self._as_it_came(data)
        choices = obj.get("choices")
        usage = read_usage(raw_usage)
        if usage is not None and self._include_usage:
            obj["usage"] = with_cost(raw_usage, usage, self._cost_text(usage))
            self._usage_sent = True
        elif choices:
            obj["usage"] = None  # malformed, or not asked for: the chunk's choices still go
        else:
            return b""
        obj["model"] = self._client_model
        return frame(orjson.dumps(obj))

    def _as_it_came(self, data: bytes) -> bytes:
        """The payload framed as it came, but for the client's model id. An upstream names its model the same
        way in every chunk, and at the same offset (what comes before it, the chunk's id and time, is the same
        in each), so once its field is known it is looked for there and replaced as bytes (a JSON string cannot
        hold those bytes unescaped, so they can only be the field itself); any other chunk takes the pattern."""
        field = self._upstream_field
        at = self._field_at
        if field is None or data[at : at + len(field)] != field:
            match = MODEL_FIELD.search(data)
            if match is None:
                return b"data: " + data + b"\n\n"
            field = self._upstream_field = match.group(0)
            at = self._field_at = match.start()
        return b"".join((b"data: ", data[:at], self._model_json, data[at + len(field) :], b"\n\n"))

    def close(self) -> bytes:
        return b""

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        if self._include_usage and not self._usage_sent:  # the upstream sent none: the estimate, with its cost
            first = _object(self._first)
            return usage_chunk(first.get("id"), first.get("created"), self._client_model, usage, cost_text) + DONE
        return DONE

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        return error_event(err, self._channel)


def _object(data: bytes | None) -> dict[str, Any]:
    try:
        obj = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        obj = None
    return obj if type(obj) is dict else {}


REASONING_FIELDS: Final = ("reasoning_content", "reasoning", "reasoning_details")


def without_reasoning(obj: dict[str, Any], part: str) -> bool:
    """Removes the reasoning from each choice's ``part`` (delta | message) in place (OpenRouter's
    ``reasoning.exclude``); False when a chunk is left with nothing to say."""
    said = bool(obj.get("usage"))
    for choice in obj.get("choices") or ():
        body = choice.get(part) if isinstance(choice, dict) else None
        if isinstance(body, dict):
            for name in REASONING_FIELDS:
                body.pop(name, None)
            said = said or any(v not in (None, "") for v in body.values()) or bool(choice.get("finish_reason"))
        else:
            said = True
    return said or not obj.get("choices")


def usage_chunk(chunk_id: Any, created: Any, model: str, usage: Usage, cost_text: str) -> bytes:
    """The usage chunk that ends a stream for a client that asked for usage."""
    chunk = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_object(usage, cost_text),
    }
    return frame(orjson.dumps(chunk))


class OpenAIResponder(Responder):
    endpoint = "chat"
    passthrough = {OpenAIAdapter: OpenAIBytePipe}
    translating = ChunkPipe

    def __init__(self, client_model: str, include_usage: bool, *, exclude_reasoning: bool = False) -> None:
        self.client_model = client_model
        self.include_usage = include_usage
        self.exclude_reasoning = exclude_reasoning  # OpenRouter's reasoning.exclude: generated and billed, not shown

    def completion(self, body: dict[str, Any], usage: Usage, cost_text: str) -> web.Response:
        if self.exclude_reasoning:
            without_reasoning(body, "message")
        body["model"] = self.client_model
        body["usage"] = with_cost(body.get("usage"), usage, cost_text)
        return web.Response(body=orjson.dumps(body), content_type="application/json")
