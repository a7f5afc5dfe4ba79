"""OpenAI Chat Completions, spoken by OpenAI and every OpenAI-compatible vendor.

Pure translation, no I/O: build the upstream request, read a complete response, and look at a
stream one event at a time. The stream is relayed as bytes — each event's payload is forwarded
as it came, with only the ``model`` field rewritten in place — except the one usage event, which
gains ``cost`` (and is dropped for clients that did not ask for usage).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tokenhub.billing.cost import Usage
from tokenhub.billing.estimate import estimate_tokens
from tokenhub.errors import GatewayError, InvalidRequest, UpstreamError
from tokenhub.providers.base import (
    AdapterDefaults,
    Completion,
    MalformedChunk,
    MalformedUsage,
    UpstreamRequest,
    error_message,
    usage_count,
)
from tokenhub.providers.registry import PROVIDERS
from tokenhub.sse import Event, frame
from tokenhub.upstream import Channel

_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')


# Built-in tools the upstream runs and bills per call (OpenAI's web search on search models, Qwen's
# enable_search, xAI's live search, OpenRouter's web plugin, GLM's and Kimi's search tools). Chat
# Completions usage does not report how many calls were made, so the gateway cannot charge them:
# they are refused (400 naming the field), never relayed free.
UNMETERED_FIELDS = ("web_search_options", "enable_search", "search_parameters", "plugins")
CLIENT_TOOL_TYPES = frozenset({"function", "custom"})


def refuse_server_tools(payload: dict[str, Any]) -> None:
    """``InvalidRequest`` naming the first built-in (upstream-run, per-call billed) tool the request asks for."""
    for name in UNMETERED_FIELDS:
        value = payload.get(name)
        if value is None or value is False or value == [] or (isinstance(value, dict) and value.get("mode") == "off"):
            continue
        raise InvalidRequest(
            f"'{name}': the upstream's built-in search is billed per call, which this gateway cannot meter, "
            "so it is not available",
            code="server_tool_not_priced",
            param=name,
        )
    tools = payload.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict):
            continue  # not a tool at all: the upstream refuses it
        kind = tool.get("type") or ("function" if "function" in tool else next(iter(tool), "function"))
        if kind not in CLIENT_TOOL_TYPES:  # e.g. {"type": "web_search"}, or Gemini's untyped {"google_search": {}}
            raise InvalidRequest(
                f"tools[{i}]: the server tool '{kind}' runs at the upstream and is billed per call, which this gateway "
                "cannot meter, so it is not available",
                code="server_tool_not_priced",
                param=f"tools[{i}]",
            )


OUTPUT_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens")


def build_request(
    payload: dict[str, Any], upstream_model: str, channel: Channel, *, stream: bool, max_output: int | None = None
) -> UpstreamRequest:
    """The client's request, unchanged but for the model id, the output bound (``max_output`` in the
    client's own field, or in the vendor's when the client gave none) and, when streaming, a usage request."""
    refuse_server_tools(payload)
    body = dict(payload)
    body["model"] = upstream_model
    if max_output is not None:
        given = [name for name in OUTPUT_LIMIT_FIELDS if body.get(name) is not None]
        vendor = PROVIDERS.get(channel.provider)
        for name in given or (vendor.output_limit_field if vendor else "max_tokens",):
            body[name] = max_output
    if stream:
        options = body.get("stream_options")
        body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    return UpstreamRequest(
        url=f"{channel.base_url}/chat/completions",
        headers={
            "Authorization": f"Bearer {channel.api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        },
        body=orjson.dumps(body),
        max_output=max_output,
    )


def read_usage(raw: Any) -> Usage | None:
    """OpenAI usage, including the vendors' spellings of cached tokens (DeepSeek's cache hits).
    None when absent or malformed (a count that is not a non-negative integer): the relay then
    charges its estimate, flagged ``estimated``."""
    if not isinstance(raw, dict):
        return None
    try:
        prompt_details = _details(raw.get("prompt_tokens_details"))
        completion_details = _details(raw.get("completion_tokens_details"))
        cached = usage_count(prompt_details.get("cached_tokens")) or usage_count(raw.get("prompt_cache_hit_tokens"))
        return Usage(
            prompt_tokens=usage_count(raw.get("prompt_tokens")),
            completion_tokens=usage_count(raw.get("completion_tokens")),
            cached_tokens=cached,
            cache_write_tokens=usage_count(prompt_details.get("cache_write_tokens")),
            reasoning_tokens=usage_count(completion_details.get("reasoning_tokens")),
        )
    except MalformedUsage:
        return None


def _details(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedUsage
    return value


def usage_object(usage: Usage, cost_text: str) -> dict[str, Any]:
    """A usage object in OpenAI's shape, with our ``cost`` (exact USD) added."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost": orjson.Fragment(cost_text.encode()),
    }
    if usage.estimated:
        out["estimated"] = True
    return out


def with_cost(raw: Any, usage: Usage, cost_text: str) -> dict[str, Any]:
    """The upstream's usage object as it came (all its details), plus ``cost``; our own object when
    the charge is an estimate (the upstream's was missing or malformed)."""
    if isinstance(raw, dict) and not usage.estimated:
        merged = dict(raw)
        merged["cost"] = orjson.Fragment(cost_text.encode())
        return merged
    return usage_object(usage, cost_text)


def message_text(obj: dict[str, Any]) -> str:
    """All generated text of a complete response (for estimating when usage is missing)."""
    pieces: list[str] = []
    for choice in obj.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            collect_text(message, pieces)
    return "".join(pieces)


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


def finish_reason_of(obj: dict[str, Any]) -> str | None:
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason"):
            return str(choice["finish_reason"])
    return None


def error_detail(body: bytes) -> str:
    """The message of an OpenAI-style error body (or the start of whatever the body is)."""
    return error_message(body)


class StreamMeter:
    """Looks at each upstream event of a stream: meters it, and says what to forward.

    ``on_data`` returns the bytes to send to the client (possibly none). After the stream,
    ``usage`` is what the upstream reported (None if it never did), ``finished`` says whether the
    stream reached a terminal signal, and ``error`` holds an upstream error event, if one came.
    """

    def __init__(self, client_model: str, include_usage: bool) -> None:
        self._model_json = b'"model":' + orjson.dumps(client_model)
        self._client_model = client_model
        self._include_usage = include_usage
        self._pieces: list[str] = []
        self.usage: Usage | None = None
        self.usage_sent = False
        self.finish_reason: str | None = None
        self.done = False
        self.error: dict[str, Any] | None = None
        self.chunk_id: Any = None
        self.created: Any = None

    @property
    def finished(self) -> bool:
        return self.done or self.finish_reason is not None

    def delivered_tokens(self) -> int:
        return estimate_tokens("".join(self._pieces))

    def on_data(self, data: bytes, cost_of: Any) -> bytes | None:
        """``cost_of(usage) -> str`` gives the exact USD text of a usage's cost."""
        if data == b"[DONE]":
            self.done = True
            return None
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise MalformedChunk("the upstream sent a malformed stream chunk") from None
        if not isinstance(obj, dict):
            raise MalformedChunk("the upstream sent a malformed stream chunk")
        if obj.get("error"):
            err = obj["error"]
            self.error = err if isinstance(err, dict) else {"message": str(err)}
            return None
        if self.chunk_id is None:
            self.chunk_id, self.created = obj.get("id"), obj.get("created")
        choices = obj.get("choices") or ()
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                collect_text(delta, self._pieces)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        raw_usage = obj.get("usage")
        usage = read_usage(raw_usage) if raw_usage is not None else None
        if raw_usage is not None and usage is None:  # malformed: as if absent (the relay estimates)
            if not choices:
                return None
            obj["usage"] = None
            obj["model"] = self._client_model
            return frame(orjson.dumps(obj))
        if usage is not None:
            self.usage = usage
            if self._include_usage:
                obj["usage"] = with_cost(raw_usage, self.usage, cost_of(self.usage))
                self.usage_sent = True
            elif choices:
                obj["usage"] = None
            else:
                return None
            obj["model"] = self._client_model
            return frame(orjson.dumps(obj))
        return frame(_MODEL_FIELD.sub(self._rewrite_model, data, count=1))

    def _rewrite_model(self, _match: re.Match[bytes]) -> bytes:
        return self._model_json

    def final_usage_chunk(self, usage: Usage, cost_text: str) -> bytes:
        """A usage chunk for a client that asked for usage when the upstream sent none."""
        return frame(
            orjson.dumps(
                {
                    "id": self.chunk_id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self._client_model,
                    "choices": [],
                    "usage": usage_object(usage, cost_text),
                }
            )
        )


def error_event(err: GatewayError | dict[str, Any], channel: Channel | None = None) -> bytes:
    """An error inside a stream, as the OpenAI SDK raises it (``data: {"error": {...}}``)."""
    if isinstance(err, GatewayError):
        body = err.to_openai()
    else:
        message = str(err.get("message") or "the upstream reported an error")
        if channel is not None:
            message = channel.redact(message)
        body = {
            "error": {
                "message": message[:1000],
                "type": str(err.get("type") or "upstream_error"),
                "code": err.get("code") if isinstance(err.get("code"), (str, type(None))) else str(err.get("code")),
                "param": None,
            }
        }
    return frame(orjson.dumps(body))


class OpenAIChunkStream:
    """OpenAI chunks as dicts (for inbound protocols that are not OpenAI's, e.g. /messages)."""

    def __init__(self, client_model: str) -> None:
        self._model = client_model
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None
        self.done = False

    @property
    def finished(self) -> bool:
        return self.done or self.finish_reason is not None

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if event.data == b"[DONE]":
            self.done = True
            return []
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise MalformedChunk("the upstream sent a malformed stream chunk") from None
        if not isinstance(obj, dict):
            raise MalformedChunk("the upstream sent a malformed stream chunk")
        if obj.get("error"):
            err = obj["error"]
            self.error = err if isinstance(err, dict) else {"message": str(err)}
            return []
        if obj.get("usage") is not None:
            self.usage = read_usage(obj["usage"]) or self.usage  # malformed: as if absent (the relay estimates)
        obj.pop("usage", None)
        choices = obj.get("choices") or []
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if not choices:
            return []
        obj["model"] = self._model
        return [obj]

    def close(self) -> list[dict[str, Any]]:
        return []


class OpenAIAdapter(AdapterDefaults):
    """The OpenAI protocol as a ``ChatAdapter``; the relay also has a byte-level fast path for it."""

    protocol = "openai"
    capabilities = frozenset({"stream", "tools", "vision", "json_schema", "reasoning"})

    def build_request(
        self, payload: dict[str, Any], upstream_model: str, channel: Channel, *, stream: bool, max_output: int | None = None,
        **_unused: Any,
    ) -> UpstreamRequest:
        return build_request(payload, upstream_model, channel, stream=stream, max_output=max_output)

    def parse_response(self, body: bytes) -> Completion:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            if isinstance(obj, dict) and obj.get("error"):
                raise UpstreamError(f"The upstream provider failed: {error_detail(body)}", code="upstream_error")
            raise UpstreamError("the upstream provider sent a response that is not a chat completion", code="upstream_bad_response")
        return Completion(obj, read_usage(obj.get("usage")))

    def chunk_stream(self, client_model: str) -> OpenAIChunkStream:
        return OpenAIChunkStream(client_model)
