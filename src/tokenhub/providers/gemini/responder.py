"""Answering a client that speaks Gemini's own API (``/api/v1beta/models/{model}:generateContent``).

A Gemini upstream takes the client's own body (``GeminiRequest``) and its chunks come back as bytes
(``GeminiBytePipe``), thought signatures and all. Every other upstream goes through
``GeminiChunkPipe`` (translated): the reader's OpenAI chunks become
``GenerateContentResponse`` chunks, one SSE ``data:`` line each, as Google streams them with
``alt=sse``: text and thought parts as they come, each function call whole in one part once its
arguments are complete, and a last chunk with ``finishReason`` and ``usageMetadata``. The gateway's
charge rides in ``usageMetadata.cost`` (exact USD; Google's SDKs drop fields they do not know, raw
HTTP clients read it). Errors use Google's shape, ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from tokenhub.errors import GatewayError
from tokenhub.providers.base import Meter, StreamReader, UpstreamRequest
from tokenhub.providers.client import CostText, Responder
from tokenhub.providers.gemini.adapter import GeminiAdapter
from tokenhub.providers.gemini.response import NativeCompletion
from tokenhub.providers.gemini.wire import decode_call_id
from tokenhub.sse import Event
from tokenhub.tokens import Usage
from tokenhub.upstream import Channel, Route

STATUS_WORDS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "RESOURCE_EXHAUSTED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                499: "CANCELLED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP"}


def google_error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": STATUS_WORDS.get(status, "UNKNOWN")}}


def usage_metadata(usage: Usage, cost_text: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": max(usage.completion_tokens - usage.reasoning_tokens, 0),
        "totalTokenCount": usage.prompt_tokens + usage.completion_tokens,
        "cost": orjson.Fragment(cost_text.encode()),
    }
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    return out


def call_part(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    try:
        args = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        args = {}
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args if isinstance(args, dict) else {}}}
    signature = decode_call_id(call_id)
    if signature:
        part["thoughtSignature"] = signature
    return part


def message_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append({"text": reasoning, "thought": True})
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append({"text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(call_part(str(call.get("id") or ""), str(function.get("name") or ""), str(function.get("arguments") or "")))
    return parts


class GeminiChunkPipe:
    def __init__(self, responder: GeminiClientResponder, reader: StreamReader, meter: Meter, cost_text: CostText, channel: Channel) -> None:
        self._responder = responder
        self._reader = reader
        self._meter = meter
        self._channel = channel
        self._calls: dict[int, list[str]] = {}  # tool-call index -> [id, name, arguments]

    def _chunk(self, parts: list[dict[str, Any]], **extra: Any) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if "finishReason" in extra:
            candidate["finishReason"] = extra.pop("finishReason")
        body = {"candidates": [candidate], "modelVersion": self._responder.client_model, "responseId": self._responder.response_id,
                **extra}  # fmt: skip
        return b"data: " + orjson.dumps(body) + b"\r\n\r\n"

    def _encode(self, chunks: list[dict[str, Any]]) -> bytes:
        parts: list[dict[str, Any]] = []
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    parts.append({"text": reasoning, "thought": True})
                if isinstance(delta.get("content"), str) and delta["content"]:
                    parts.append({"text": delta["content"]})
                for call in delta.get("tool_calls") or ():
                    slot = self._calls.setdefault(call.get("index", 0), ["", "", ""])
                    function = call.get("function") or {}
                    slot[0] = slot[0] or str(call.get("id") or "")
                    slot[1] = slot[1] or str(function.get("name") or "")
                    slot[2] += str(function.get("arguments") or "")
        return self._chunk(parts) if parts else b""

    def feed(self, event: Event) -> bytes:
        reader = self._reader
        return self._encode(reader.chunks(reader.read(event)))

    def close(self) -> bytes:
        return self._encode(self._reader.close())

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        calls = [call_part(*self._calls[i]) for i in sorted(self._calls)]
        finish = FINISH.get(self._meter.finish_reason or "stop", "STOP")
        return self._chunk(calls, finishReason=finish, usageMetadata=usage_metadata(usage, cost_text))

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        if isinstance(err, GatewayError):
            body = google_error(err.status, self._channel.redact(err.message))
        else:
            body = google_error(500, self._channel.redact(str(err.get("message") or "the upstream reported an error")))
        return b"data: " + orjson.dumps(body) + b"\r\n\r\n"


class GeminiBytePipe:
    """Gemini upstream, Gemini client: each chunk's bytes as they came; the one carrying the final usage is
    re-serialised with ``usageMetadata.cost`` (what the meter will charge)."""

    def __init__(self, responder: GeminiClientResponder, reader: StreamReader, meter: Meter, cost_text: CostText, channel: Channel) -> None:
        self._reader = reader
        self._meter = meter
        self._cost_text = cost_text
        self._channel = channel

    def feed(self, event: Event) -> bytes:
        self._reader.read(event)  # tells the meter (usage, finish, errors, text)
        if self._meter.error is not None:
            return b""  # the relay ends the stream with the error
        data = event.data
        if data.find(b'"finishReason"') >= 0 and self._meter.usage is not None:  # (``in`` tries a bytes needle as an int first: a TypeError made and dropped)
            obj = orjson.loads(data)
            if isinstance(obj.get("usageMetadata"), dict):
                obj["usageMetadata"]["cost"] = orjson.Fragment(self._cost_text(self._meter.usage).encode())
                data = orjson.dumps(obj)
        return b"data: " + data + b"\r\n\r\n"

    def close(self) -> bytes:
        return b""

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        return b""  # the upstream's last chunk carried the finish and the usage

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        message = err.message if isinstance(err, GatewayError) else str(err.get("message") or "the upstream reported an error")
        status = err.status if isinstance(err, GatewayError) else 500
        return b"data: " + orjson.dumps(google_error(status, self._channel.redact(message))) + b"\r\n\r\n"


class GeminiRequest:
    """A Gemini client's own body, for routes whose upstream is Gemini: as it came but for the model (in the
    URL), our key and ``generationConfig.maxOutputTokens`` (the bound the hold covers)."""

    def __init__(self, body: dict[str, Any], stream: bool) -> None:
        self.body = body
        self.stream = stream

    def native(self, route: Route, max_output: int) -> UpstreamRequest:
        body = {**self.body}
        config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
        body.pop("generation_config", None)
        body["generationConfig"] = {**config, "maxOutputTokens": max_output}
        method = "streamGenerateContent?alt=sse" if self.stream else "generateContent"
        channel = route.channel
        return UpstreamRequest(
            url=f"{channel.base_url.rstrip('/')}/v1beta/models/{quote(route.upstream_id, safe='-._~')}:{method}",
            headers={"x-goog-api-key": channel.api_key, "Content-Type": "application/json",
                     "Accept": "text/event-stream" if self.stream else "application/json"},  # fmt: skip
            body=orjson.dumps(body),
            max_output=max_output,
        )

    def translated(self) -> None:
        pass  # every Gemini request also translates to chat


class GeminiClientResponder(Responder):
    endpoint = "gemini"
    passthrough = {GeminiAdapter: GeminiBytePipe}
    translating = GeminiChunkPipe
    sse_headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

    def __init__(self, client_model: str) -> None:
        self.client_model = client_model
        self.response_id = secrets.token_urlsafe(16)

    def completion(self, body: dict[str, Any], usage: Usage, cost_text: str) -> web.Response:
        native = body.native if isinstance(body, NativeCompletion) else None  # a Gemini upstream's own answer (pass-through)
        if native is not None:
            native["usageMetadata"] = {**(native.get("usageMetadata") if isinstance(native.get("usageMetadata"), dict) and not usage.estimated
                                          else usage_metadata(usage, cost_text)), "cost": orjson.Fragment(cost_text.encode())}  # fmt: skip
            return web.Response(body=orjson.dumps(native), content_type="application/json")
        choices = body.get("choices") or [{}]
        candidate = {"content": {"role": "model", "parts": message_parts(choices[0].get("message") or {})},
                     "finishReason": FINISH.get(choices[0].get("finish_reason") or "stop", "STOP"), "index": 0}  # fmt: skip
        answer = {"candidates": [candidate], "usageMetadata": usage_metadata(usage, cost_text), "modelVersion": self.client_model,
                  "responseId": self.response_id}  # fmt: skip
        return web.Response(body=orjson.dumps(answer), content_type="application/json")
