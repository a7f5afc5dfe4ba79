"""A Gemini upstream's stream (``streamGenerateContent?alt=sse``), one event at a time."""

from __future__ import annotations

import secrets
from typing import Any

from tokenhub.providers.base import (
    MalformedChunk,
    Meter,
    collect_text,
    new_chunk,
    now,
)
from tokenhub.providers.gemini.wire import (
    BROKEN_CALL,
    blocked_message,
    broken_call_message,
    finish_reason,
    google_error,
    load,
    read_usage,
    tool_call,
)
from tokenhub.sse import Event


class GeminiStreamReader:
    """``streamGenerateContent?alt=sse`` events (each a whole response with delta parts).

    Gemini has no byte pipe (no client speaks it to the gateway yet), so ``read`` translates the event
    as it reads it: its chunks are what it parsed, and the text the meter gets is theirs.
    """

    def __init__(self, client_model: str, meter: Meter) -> None:
        self._model = client_model
        self._meter = meter
        self._id = ""
        self._created = now()
        self._sent_role = False
        self._tool_index = 0

    def read(self, event: Event) -> list[dict[str, Any]]:
        chunks = self._translate(event)
        for chunk in chunks:
            collect_text(chunk["choices"][0]["delta"], self._meter.pieces)
        return chunks

    def chunks(self, parsed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return parsed

    def _translate(self, event: Event) -> list[dict[str, Any]]:
        meter = self._meter
        obj = load(event.data)
        if not isinstance(obj, dict):
            raise MalformedChunk("the upstream sent a malformed stream chunk")
        err = google_error(obj)
        if err is not None:
            meter.error = {
                "message": str(err.get("message") or "the upstream reported an error"),
                "type": "upstream_error",
                "code": str(err.get("status") or err.get("code") or "upstream_error"),
            }
            return []
        if not self._id:
            response_id = obj.get("responseId")
            self._id = (
                f"chatcmpl-{response_id}" if isinstance(response_id, str) and response_id else f"chatcmpl-{secrets.token_hex(12)}"
            )
        if obj.get("usageMetadata") is not None:
            meter.usage = read_usage(obj["usageMetadata"])  # None when malformed: the relay estimates
        candidates = obj.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                meter.error = {"message": blocked_message(feedback), "type": "invalid_request_error", "code": "content_filter"}
            return []
        candidate = candidates[0]
        if not isinstance(candidate, dict):
            raise MalformedChunk("the upstream sent a malformed stream chunk")
        chunks = []
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("functionCall"), dict):
                call = tool_call(part["functionCall"], part.get("thoughtSignature"), self._tool_index)
                self._tool_index += 1
                chunks.append(self._chunk({"tool_calls": [call]}))
            elif isinstance(part.get("text"), str) and part["text"]:
                chunks.append(self._chunk({"reasoning_content" if part.get("thought") else "content": part["text"]}))
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason and meter.finish_reason is None and meter.error is None:
            if reason in BROKEN_CALL:
                meter.error = {
                    "message": broken_call_message(candidate),
                    "type": "upstream_error",
                    "code": "upstream_malformed_function_call",
                }
            else:
                meter.finish_reason = finish_reason(reason, self._tool_index > 0)
                meter.finished = True
                chunks.append(self._chunk({}, meter.finish_reason))
        return chunks

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self._sent_role:
            self._sent_role = True
            delta = {"role": "assistant", **({"content": ""} if not delta else {}), **delta}
        return new_chunk(self._id, self._created, self._model, delta, finish)

    def close(self) -> list[dict[str, Any]]:
        return []
