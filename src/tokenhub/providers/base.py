"""What every chat adapter answers, and the pieces adapters share.

The gateway's canonical shape is OpenAI Chat Completions: a request arrives as (or is translated
to) an OpenAI chat payload, and every upstream's answer leaves its adapter as an OpenAI
``chat.completion`` object or as OpenAI ``chat.completion.chunk`` dicts. An adapter is pure
translation: it builds requests and reads bytes; it never opens a socket and never touches money.

    ChatAdapter
      build_request(payload, upstream_model, channel, stream)  -> UpstreamRequest
      parse_response(body bytes)                                -> Completion (OpenAI dict + Usage)
      error_detail(body bytes)                                  -> the upstream's own error message
      error(status, body, channel, retry_after)                 -> GatewayError
      remote_images(payload)                                    -> URLs the relay must fetch first
      stream_reader(client_model, meter)                        -> StreamReader
    StreamReader  (one per streamed response)
      read(sse Event) -> the parsed event, after telling the meter what it says (usage, finish
                         reason, error, end, text, server-tool uses)
      chunks(parsed) -> [OpenAI chunk dicts]   close() -> [...]

Usage is reported in OpenAI's semantics (cached and cache-write tokens inside ``prompt_tokens``,
reasoning tokens inside ``completion_tokens``); chunks carry no usage — the meter keeps it and the
responder adds the usage chunk, with the cost, itself.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import orjson

from tokenhub.digits import whole_number
from tokenhub.errors import GatewayError, InvalidRequest, RateLimited, ServiceUnavailable, UpstreamError
from tokenhub.sse import Event
from tokenhub.tokens import Usage
from tokenhub.upstream import Channel

MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')  # a JSON payload's model field, rewritten in place


@dataclass(frozen=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    max_output: int | None = None  # the output bound per choice the request forwards (the hold covers it)


@dataclass
class Completion:
    """A complete answer: an OpenAI ``chat.completion`` dict and the upstream's usage (None if absent)."""

    body: dict[str, Any]
    usage: Usage | None


class Meter(Protocol):
    """What a stream reader tells as it reads: the relay's meter (relay/meter.py) keeps it and owns the charge rules."""

    usage: Usage | None  # the upstream's usage, once reported (None while absent, or when malformed)
    finish_reason: str | None  # OpenAI vocabulary: stop | length | tool_calls | content_filter
    error: dict[str, Any] | None  # an error the upstream sent inside the stream: {"message", "type", "code"}
    finished: bool  # the upstream's terminal signal arrived ([DONE], message_stop, a finish reason)
    pieces: list[str]  # the generated text so far (content, reasoning, tool arguments), for an estimate
    text_later: Callable[[], None] | None  # a reader's text kept undecoded: put in ``pieces`` before they count

    def tool_use(self, kind: str) -> None:
        """One server-tool use delivered (e.g. a web search result), billed even if usage never comes."""
        ...


class StreamReader(Protocol):
    """One upstream stream, read one event at a time; made by ``ChatAdapter.stream_reader`` with its meter.

    ``read`` parses the event once and tells the meter what it says; ``chunks`` translates the parsed
    event into OpenAI chunk dicts, for the pipes that translate (a pipe relaying the bytes never asks).
    """

    def read(self, event: Event) -> Any:
        """The parsed event (None when there is nothing to translate); raise ``MalformedChunk`` on garbage."""
        ...

    def chunks(self, parsed: Any) -> list[dict[str, Any]]:
        """OpenAI chunk dicts for an event ``read`` returned."""
        ...

    def close(self) -> list[dict[str, Any]]:
        """Chunks still pending when the upstream stream ends."""
        ...


class ChatAdapter(Protocol):
    protocol: str
    capabilities: frozenset[str]  # of: stream, tools, vision, json_schema, reasoning

    def build_request(
        self,
        payload: dict[str, Any],
        upstream_model: str,
        channel: Channel,
        *,
        stream: bool,
        max_output: int | None = None,  # output tokens per choice to forward: exactly what the hold covers
        output_ceiling: int | None = None,  # the most an adapter may forward when it adds room (for thinking)
        images: dict[str, tuple[str, bytes]] | None = None,  # remote images the relay fetched, by URL
        extra_headers: dict[str, str] | None = None,  # client headers the upstream should see (anthropic-beta)
    ) -> UpstreamRequest:
        """Adapters take the keyword arguments they use and ignore the others."""
        ...

    def parse_response(self, body: bytes) -> Completion: ...

    def error_detail(self, body: bytes) -> str: ...

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
        """An HTTP error answer in our terms (most adapters: ``upstream_error`` on ``error_detail``)."""
        ...

    def remote_images(self, payload: dict[str, Any]) -> list[str]:
        """Image URLs the gateway must download for this upstream (it cannot take URLs); usually none."""
        ...

    def stream_reader(self, client_model: str, meter: Meter) -> StreamReader: ...


class AdapterDefaults:
    """What most chat adapters answer alike: errors read from an ``{"error": {"message"}}`` body and
    mapped by status, and no images to fetch. An adapter overrides what its protocol does otherwise."""

    def error_detail(self, body: bytes) -> str:
        return error_message(body)

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
        return upstream_error(status, self.error_detail(body), channel, retry_after)

    def remote_images(self, payload: dict[str, Any]) -> list[str]:
        return []


class MalformedChunk(UpstreamError):
    code = "upstream_malformed_chunk"


def upstream_error(status: int, detail: str, channel: Channel, retry_after: str | None = None) -> GatewayError:
    """An upstream's HTTP error in our terms, without its secrets or address.

    The client's own mistakes keep their status; the upstream refusing *our* credentials or not
    knowing the model is the operator's problem (502, without the upstream's words); overload is
    503 and rate limiting 429 (both retryable elsewhere).
    """
    detail = channel.redact(detail or "no details")[:1000]
    if status in (401, 403):
        return UpstreamError(
            "The upstream provider rejected the gateway's credentials for this model; the operator must check the channel.",
            code="upstream_auth_failed",
        )
    if status == 429:
        headers = {"Retry-After": retry_after} if retry_after is not None and whole_number(retry_after, 9) is not None else {}
        return RateLimited(f"The upstream provider is rate limiting: {detail}", code="upstream_rate_limited", headers=headers)
    if status in (400, 409, 413, 422):
        return InvalidRequest(f"The upstream provider rejected the request: {detail}", code="upstream_bad_request", status=status)
    if status == 404:
        return UpstreamError(f"The upstream provider does not know this model: {detail}", code="upstream_model_not_found")
    if status in (503, 529):
        return ServiceUnavailable(f"The upstream provider is overloaded: {detail}", code="upstream_overloaded")
    return UpstreamError(f"The upstream provider failed (HTTP {status}): {detail}", code="upstream_error")


def redacted(err: GatewayError, channel: Channel) -> GatewayError:
    """``err`` with its message scrubbed for ``channel`` (for errors raised where the channel was not at hand)."""
    err.message = channel.redact(err.message)
    return err


def error_message(body: bytes) -> str:
    """The message of an ``{"error": {"message": ...}}`` body (OpenAI's and Anthropic's shape), or
    the start of whatever the body is."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace").strip() or "no details"
    if isinstance(parsed, dict):
        err = parsed.get("error", parsed)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return "no details"


def new_chunk(chunk_id: str, created: int, model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """One OpenAI ``chat.completion.chunk`` with a single choice (index 0)."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def now() -> int:
    return int(time.time())


def collect_text(part: dict[str, Any], pieces: list[str]) -> None:
    for field in ("content", "reasoning_content", "refusal"):
        value = part.get(field)
        if isinstance(value, str):
            pieces.append(value)
    for call in part.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            for field in ("name", "arguments"):
                value = function.get(field)
                if isinstance(value, str):
                    pieces.append(value)


def message_text(obj: dict[str, Any]) -> str:
    """All generated text of a complete response (for estimating when usage is missing)."""
    pieces: list[str] = []
    for choice in obj.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            collect_text(message, pieces)
    return "".join(pieces)


def finish_reason_of(obj: dict[str, Any]) -> str | None:
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason"):
            return str(choice["finish_reason"])
    return None
