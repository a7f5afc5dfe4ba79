"""A complete Gemini answer read back into an OpenAI ``chat.completion``."""

from __future__ import annotations

import secrets
from typing import Any

from tokenhub.errors import InvalidRequest, UpstreamError
from tokenhub.providers.base import (
    Completion,
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


def parse_response(body: bytes) -> Completion:
    obj = load(body)
    err = google_error(obj)
    if err is not None:
        raise UpstreamError(f"The upstream provider failed: {err.get('message') or 'no details'}", code="upstream_error")
    if not isinstance(obj, dict):
        raise UpstreamError("the upstream provider sent a response that is not a Gemini response", code="upstream_bad_response")
    usage = read_usage(obj.get("usageMetadata"))
    candidates = obj.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        if isinstance(obj.get("promptFeedback"), dict) and obj["promptFeedback"].get("blockReason"):
            raise InvalidRequest(blocked_message(obj["promptFeedback"]), code="content_filter")
        raise UpstreamError("the upstream provider answered without any candidate", code="upstream_bad_response")
    choices = []
    for i, candidate in enumerate(candidates):
        if not isinstance(candidate, dict):
            raise UpstreamError("the upstream provider sent a malformed candidate", code="upstream_bad_response")
        if candidate.get("finishReason") in BROKEN_CALL:
            raise UpstreamError(broken_call_message(candidate), code="upstream_malformed_function_call")
        choices.append(_choice(candidate, i))
    response_id = obj.get("responseId")
    completion: dict[str, Any] = {
        "id": f"chatcmpl-{response_id}" if isinstance(response_id, str) and response_id else f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": now(),
        "model": str(obj.get("modelVersion") or ""),
        "choices": choices,
    }
    if usage is not None:
        completion["usage"] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        }
    native = NativeCompletion(completion)
    native.native = obj  # Google's own answer, for a Gemini client on a pass-through route
    return Completion(native, usage)


class NativeCompletion(dict):  # type: ignore[type-arg]
    """A chat completion that also keeps the upstream's own ``GenerateContentResponse``."""

    native: dict[str, Any]


def _choice(candidate: dict[str, Any], position: int) -> dict[str, Any]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(tool_call(part["functionCall"], part.get("thoughtSignature")))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    message["refusal"] = None
    index = candidate.get("index")
    return {
        "index": index if isinstance(index, int) else position,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(str(candidate.get("finishReason") or "STOP"), bool(calls)),
    }
