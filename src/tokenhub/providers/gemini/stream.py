"""A Gemini upstream's stream (``streamGenerateContent?alt=sse``), one event at a time."""

from __future__ import annotations

import secrets
from typing import Any

from tokenhub.billing.cost import Usage
from tokenhub.providers.base import (
    MalformedChunk,
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


class GeminiChunkStream:
    """OpenAI chunks from ``streamGenerateContent?alt=sse`` events (each a whole response with delta parts)."""

    def __init__(self, client_model: str) -> None:
        self._model = client_model
        self._id = ""
        self._created = now()
        self._sent_role = False
        self._tool_index = 0
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def feed(self, event: Event) -> list[dict[str, Any]]:
        obj = load(event.data)
        if not isinstance(obj, dict):
            raise MalformedChunk("the upstream sent a malformed stream chunk")
        err = google_error(obj)
        if err is not None:
            self.error = {
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
            self.usage = read_usage(obj["usageMetadata"])  # None when malformed: the relay estimates
        candidates = obj.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self.error = {"message": blocked_message(feedback), "type": "invalid_request_error", "code": "content_filter"}
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
        if isinstance(reason, str) and reason and self.finish_reason is None and self.error is None:
            if reason in BROKEN_CALL:
                self.error = {
                    "message": broken_call_message(candidate),
                    "type": "upstream_error",
                    "code": "upstream_malformed_function_call",
                }
            else:
                self.finish_reason = finish_reason(reason, self._tool_index > 0)
                chunks.append(self._chunk({}, self.finish_reason))
        return chunks

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self._sent_role:
            self._sent_role = True
            delta = {"role": "assistant", **({"content": ""} if not delta else {}), **delta}
        return new_chunk(self._id, self._created, self._model, delta, finish)

    def close(self) -> list[dict[str, Any]]:
        return []
