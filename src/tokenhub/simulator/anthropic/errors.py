"""Anthropic's error bodies (one per HTTP status), request ids and ``anthropic-ratelimit-*`` headers."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.common.text import ALNUM


def new_request_id() -> str:
    return "req_011C" + "".join(secrets.choice(ALNUM) for _ in range(20))


class FakeAPIError(Exception):
    """An error answered with Anthropic's JSON error body."""

    def __init__(
        self, status: int, message: str, type_: str = "invalid_request_error", *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}, "request_id": request_id}

    def response(self) -> web.Response:
        request_id = new_request_id()
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.body(request_id)),
            content_type="application/json",
            headers={**self.headers, "request-id": request_id},
        )


def invalid(message: str) -> FakeAPIError:
    return FakeAPIError(400, message)


def _rfc3339(seconds_ahead: float) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds_ahead)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def ratelimit_headers(exhausted: bool = False) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind, limit in (("requests", 4000), ("tokens", 2_000_000), ("input-tokens", 1_600_000), ("output-tokens", 400_000)):
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        remaining = 0 if exhausted and kind in ("requests", "input-tokens", "tokens") else limit - 1
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{kind}-reset"] = _rfc3339(1 if exhausted else 0)
    return headers


def status_error(status: int, model: str, retry_after: str | None = None) -> FakeAPIError:
    """The realistic Anthropic error for an HTTP status."""
    retry = {"retry-after": retry_after} if retry_after is not None else {}
    if status == 400:
        return FakeAPIError(400, "Invalid request (simulated by #fake:status=400).")
    if status == 401:
        return FakeAPIError(401, "invalid x-api-key", "authentication_error")
    if status == 402:
        return FakeAPIError(402, "Your credit balance is too low to access the Anthropic API.", "billing_error")
    if status == 403:
        return FakeAPIError(403, "Your API key does not have permission to use the specified resource.", "permission_error")
    if status == 404:
        return FakeAPIError(404, f"model: {model}", "not_found_error")
    if status == 413:
        return FakeAPIError(413, "Request exceeds the maximum allowed number of bytes.", "request_too_large")
    if status == 429:
        return FakeAPIError(
            429,
            "This request would exceed the rate limit for your organization (fake-org) of 4,000 requests per "
            "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
            "headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try "
            "again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your "
            "options for a rate limit increase.",
            "rate_limit_error",
            headers={**ratelimit_headers(exhausted=True), "retry-after": retry_after or "1"},
        )
    if status == 500:
        return FakeAPIError(500, "Internal server error", "api_error", headers=retry)
    if status == 504:
        return FakeAPIError(504, "Request timed out", "timeout_error")
    if status == 529:
        return FakeAPIError(529, "Overloaded", "overloaded_error", headers=retry)
    type_ = "api_error" if status >= 500 else "invalid_request_error"
    return FakeAPIError(status, f"Simulated HTTP {status} error.", type_, headers=retry)


MID_STREAM_ERROR: dict[str, Any] = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def success_headers() -> dict[str, str]:
    return ratelimit_headers()
