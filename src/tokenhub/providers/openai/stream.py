"""An OpenAI-protocol upstream's stream, one event at a time."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tokenhub.billing.cost import Usage
from tokenhub.billing.estimate import estimate_tokens
from tokenhub.providers.base import (
    MalformedChunk,
)
from tokenhub.providers.openai.wire import MODEL_FIELD, collect_text, read_usage, usage_object, with_cost
from tokenhub.sse import Event, frame


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
        return frame(MODEL_FIELD.sub(self._rewrite_model, data, count=1))

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
