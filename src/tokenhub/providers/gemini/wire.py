"""Gemini shapes both directions share: tool-call ids that carry thought signatures, usage in OpenAI's
semantics, finish reasons, tool calls, and Google's error bodies.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import orjson

from tokenhub.tokens import MalformedUsage, Usage, usage_count

THOUGHT_SEPARATOR = "__thought__"


FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "LANGUAGE",
    }
)


BROKEN_CALL = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})


def encode_call_id(signature: str | None) -> str:
    """A fresh OpenAI tool-call id, carrying Gemini's thought signature when there is one."""
    base = "call_" + secrets.token_hex(12)
    if signature and B64_TEXT.fullmatch(signature):
        return base + THOUGHT_SEPARATOR + signature.rstrip("=").replace("+", "-").replace("/", "_")
    return base


def decode_call_id(call_id: Any) -> str | None:
    """The thought signature an id minted by ``encode_call_id`` carries (standard base64), or None."""
    if not isinstance(call_id, str) or THOUGHT_SEPARATOR not in call_id:
        return None
    encoded = call_id.partition(THOUGHT_SEPARATOR)[2]
    if not encoded or not B64_TEXT.fullmatch(encoded):
        return None
    text = encoded.rstrip("=").replace("-", "+").replace("_", "/")
    return text + "=" * (-len(text) % 4)


def read_usage(meta: Any) -> Usage | None:
    """``usageMetadata`` in OpenAI's semantics (cached inside prompt, thoughts inside completion).
    None when absent or malformed (a count that is not a non-negative integer): the relay then
    charges its estimate, flagged ``estimated``."""
    if not isinstance(meta, dict):
        return None
    try:
        prompt = usage_count(meta.get("promptTokenCount")) + usage_count(meta.get("toolUsePromptTokenCount"))
        candidates = usage_count(meta.get("candidatesTokenCount"))
        thoughts = usage_count(meta.get("thoughtsTokenCount"))
        total = usage_count(meta.get("totalTokenCount"))
        cached = usage_count(meta.get("cachedContentTokenCount"))
    except MalformedUsage:
        return None
    completion = candidates + thoughts
    if thoughts and candidates >= thoughts and total and prompt + candidates == total:
        completion = candidates  # some models report candidates already including thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(cached, prompt),
        reasoning_tokens=thoughts,
    )


def finish_reason(gemini: str, called_tools: bool) -> str:
    if gemini in FILTERED:
        return "content_filter"
    if gemini == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called_tools else "stop"


def blocked_message(feedback: Any) -> str:
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    message = feedback.get("blockReasonMessage") if isinstance(feedback, dict) else None
    text = f"The model's provider refused the prompt (blockReason {reason or 'unknown'})"
    return f"{text}: {message}" if isinstance(message, str) and message else text + "."


def broken_call_message(candidate: dict[str, Any]) -> str:
    detail = candidate.get("finishMessage")
    text = f"The model produced an invalid function call ({candidate.get('finishReason')})"
    return f"{text}: {str(detail)[:300]}" if detail else text + "."


def tool_call(function_call: dict[str, Any], signature: Any, index: int | None = None) -> dict[str, Any]:
    args = function_call.get("args")
    call: dict[str, Any] = {}
    if index is not None:
        call["index"] = index
    call["id"] = encode_call_id(signature if isinstance(signature, str) else None)
    call["type"] = "function"
    call["function"] = {"name": str(function_call.get("name") or ""), "arguments": orjson.dumps(args or {}).decode()}
    return call


def load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def google_error(obj: Any) -> dict[str, Any] | None:
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    return err if isinstance(err, dict) else None


def error_detail(body: bytes) -> str:
    """The message of Google's error body (``{"error": {"code", "message", "status"}}``, maybe in a list)."""
    err = google_error(load(body))
    if err is not None and isinstance(err.get("message"), str) and err["message"]:
        return err["message"]
    return body[:300].decode("utf-8", "replace").strip() or "no details"


def retry_after_from_body(body: bytes) -> str | None:
    """Whole seconds from a 429's ``RetryInfo.retryDelay`` ("37s" -> "37"): Gemini sends no Retry-After header."""
    err = google_error(load(body))
    for detail in (err or {}).get("details") or ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return str(max(1, round(float(delay[:-1]))))
            except ValueError:
                return None
    return None


def credentials_rejected(status: int, body: bytes) -> bool:
    """Google answers a wrong API key with 400 (``API_KEY_INVALID``): our credential, not the client's request."""
    if status in (401, 403):
        return True
    err = google_error(load(body))
    return status == 400 and any(
        isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in (err or {}).get("details") or ()
    )


B64_TEXT = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
