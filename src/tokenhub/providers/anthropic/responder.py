"""Answering a client that speaks Anthropic Messages (POST /api/v1/messages).

Two pipes, as for OpenAI clients (see openai_responder.py):

* ``AnthropicBytePipe``: the upstream is Anthropic itself, so its events are relayed as they came
  (only ``model`` in ``message_start`` rewritten), and metered on the way;
* ``AnthropicChunkPipe``: any other upstream; its OpenAI chunks become Anthropic's event sequence
  through ``AnthropicStreamWriter``.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import orjson
from aiohttp import web

from tokenhub.billing.cost import Usage
from tokenhub.billing.estimate import estimate_tokens
from tokenhub.errors import GatewayError
from tokenhub.providers.anthropic.message import anthropic_usage, error_body, to_anthropic_message
from tokenhub.providers.anthropic.wire import finish_reason, read_usage
from tokenhub.providers.anthropic.writer import AnthropicStreamWriter
from tokenhub.providers.base import ChatAdapter, ChunkStream, MalformedChunk
from tokenhub.providers.openai.responder import StreamFacts
from tokenhub.sse import Event
from tokenhub.upstream import Channel

CostText = Callable[[Usage], str]
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')


def error_event(status: int, message: str) -> bytes:
    return b"event: error\ndata: " + orjson.dumps(error_body(status, message)) + b"\n\n"


def _stream_error_status(err: GatewayError | dict[str, Any]) -> tuple[int, str]:
    if isinstance(err, GatewayError):
        return err.status, err.message
    kind = str(err.get("type") or "")
    status = 529 if "overloaded" in kind else 500
    return status, str(err.get("message") or "the upstream reported an error")


class AnthropicResponder:
    sse_headers = SSE_HEADERS
    endpoint = "messages"

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
            if usage.estimated:  # the upstream's usage was missing or malformed: report what was charged
                message["usage"] = anthropic_usage(usage)
            return web.Response(body=orjson.dumps(message), content_type="application/json")
        message = to_anthropic_message(body, usage, self.client_model, self.message_id, tool_names=self.tool_names)
        return web.Response(body=orjson.dumps(message), content_type="application/json")

    def pipe(self, adapter: ChatAdapter, cost_text: CostText, channel: Channel) -> "AnthropicBytePipe | AnthropicChunkPipe":
        if adapter.protocol == "anthropic":
            return AnthropicBytePipe(self.client_model, channel, input_tokens=self.input_tokens)
        return AnthropicChunkPipe(self, adapter.chunk_stream(self.client_model), channel)


class AnthropicBytePipe:
    """Anthropic upstream, Anthropic client: relay the events, read usage and stop reason on the way.

    Server-tool results are counted as they pass (a ``*_tool_result`` block that is not an error is
    one billed use), so a stream whose usage never comes — the client left after a search, the usage
    was malformed — is charged its estimate *and* the uses delivered, never the searches for free.
    """

    def __init__(self, client_model: str, channel: Channel, *, input_tokens: int = 0) -> None:
        self._model_json = b'"model":' + orjson.dumps(client_model)
        self._channel = channel
        self._input_tokens = input_tokens  # the prompt estimate, for a usage the upstream never gave
        self._pieces: list[str] = []
        self._usage_raw: dict[str, Any] = {}
        self._usage: Usage | None = None
        self._tool_uses: dict[str, int] = {}  # server-tool results delivered, by kind
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None
        self.finished = False

    @property
    def usage(self) -> Usage | None:
        """The upstream's usage; without one, the estimate with the server-tool uses delivered, if any."""
        if self._usage is not None or not self._tool_uses:
            return self._usage
        return Usage(self._input_tokens, self.delivered_tokens(), estimated=True, tool_uses=dict(self._tool_uses))

    def feed(self, event: Event) -> bytes:
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise MalformedChunk("the upstream sent a malformed stream event") from None
        if not isinstance(obj, dict):
            raise MalformedChunk("the upstream sent a malformed stream event")
        kind = obj.get("type")
        data = event.data
        if kind == "message_start":
            message = obj.get("message") or {}
            self._merge_usage(message.get("usage") if isinstance(message, dict) else None)
            data = _MODEL_FIELD.sub(lambda _m: self._model_json, data, count=1)
        elif kind == "content_block_start":
            self._count_tool_result(obj.get("content_block"))
        elif kind == "content_block_delta":
            delta = obj.get("delta") or {}
            for field in ("text", "thinking", "partial_json"):
                if isinstance(delta.get(field), str):
                    self._pieces.append(delta[field])
        elif kind == "message_delta":
            self._merge_usage(obj.get("usage"))
            self._usage = read_usage(self._usage_raw)  # None when malformed: estimated (see usage)
            self.finish_reason = finish_reason((obj.get("delta") or {}).get("stop_reason"))
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            err = obj.get("error") or {}
            self.error = {"message": err.get("message"), "type": err.get("type"), "code": err.get("type")}
            return b""
        name = event.name or (kind.encode() if isinstance(kind, str) else b"message")
        return b"event: " + name + b"\ndata: " + data + b"\n\n"

    def _count_tool_result(self, block: Any) -> None:
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str) or not kind.endswith("_tool_result") or kind == "mcp_tool_result":
            return
        content = block.get("content")
        if isinstance(content, dict) and "error_code" in content:  # e.g. max_uses_exceeded: not billed
            return
        name = kind.removesuffix("_tool_result")
        self._tool_uses[name] = self._tool_uses.get(name, 0) + 1

    def _merge_usage(self, usage: Any) -> None:
        """message_delta's usage is cumulative and may omit fields message_start gave."""
        if isinstance(usage, dict):
            self._usage_raw.update({k: v for k, v in usage.items() if v is not None})
        elif usage is not None:
            self._usage_raw["output_tokens"] = usage  # not an object: malformed, so read_usage gives None

    def close(self) -> bytes:
        return b""

    def delivered_tokens(self) -> int:
        return estimate_tokens("".join(self._pieces))

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        return b""  # message_stop came from the upstream

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        status, message = _stream_error_status(err)
        return error_event(status, self._channel.redact(message))


class AnthropicChunkPipe(StreamFacts):
    """Any other upstream: its OpenAI chunks, as Anthropic's event sequence."""

    def __init__(self, responder: AnthropicResponder, stream: ChunkStream, channel: Channel) -> None:
        self._stream = stream
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
        return self._encode(self._stream.feed(event))

    def close(self) -> bytes:
        return self._encode(self._stream.close())

    def delivered_tokens(self) -> int:
        return estimate_tokens(self._writer.delivered_text)

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        head = b"" if self._started else self._writer.start(self._input_tokens)
        return head + self._writer.finish(usage, self._stream.finish_reason)

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        status, message = _stream_error_status(err)
        return error_event(status, self._channel.redact(message))
