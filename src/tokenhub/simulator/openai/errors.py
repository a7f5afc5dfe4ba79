"""OpenAI's error bodies (one per HTTP status) and its ``x-ratelimit-*`` headers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


class FakeAPIError(Exception):
    """An error answered as an OpenAI JSON error body."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.body),
            content_type="application/json",
            headers=self.headers,
        )


def _ratelimit_headers(remaining_requests: int = 9999, reset_requests: str = "6ms") -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-requests": str(remaining_requests),
        "x-ratelimit-remaining-tokens": "29999000" if remaining_requests else "0",
        "x-ratelimit-reset-requests": reset_requests,
        "x-ratelimit-reset-tokens": "0s",
    }


def status_error(status: int, model: str, retry_after: str | None = None) -> FakeAPIError:
    """The realistic OpenAI(-compatible) error for an HTTP status."""
    retry = {"retry-after": retry_after} if retry_after is not None else {}
    if status == 400:
        return FakeAPIError(400, "Invalid request (simulated by #fake:status=400).")
    if status == 401:
        return FakeAPIError(
            401,
            "Incorrect API key provided: sk-fake***. You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    if status == 403:
        return FakeAPIError(
            403, "Country, region, or territory not supported", "request_forbidden", code="unsupported_country_region_territory"
        )
    if status == 404:
        return FakeAPIError(404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found")
    if status == 413:
        return FakeAPIError(413, "Request too large. Reduce the size of your request.", code="request_too_large")
    if status == 429:
        headers = {**_ratelimit_headers(0, "1s"), "retry-after": retry_after or "1"}
        return FakeAPIError(
            429,
            f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
            "Limit 10000, Used 10000, Requested 1. Please try again in 1s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more.",
            "requests",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if status == 500:
        return FakeAPIError(500, "The server had an error while processing your request. Sorry about that!", "server_error")
    if status == 502:  # what OpenAI's edge actually returns: note the integer code
        return FakeAPIError(502, "Bad gateway.", "cf_bad_gateway", code=502)
    if status == 503:
        return FakeAPIError(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            code="service_unavailable",
            headers=retry,
        )
    if status == 504:
        return FakeAPIError(504, "Gateway timeout.", "server_error", code="gateway_timeout")
    if status == 529:
        return FakeAPIError(529, "Overloaded", "overloaded_error", code="overloaded", headers=retry)
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return FakeAPIError(status, f"Simulated HTTP {status} error.", type_, headers=retry)


def mid_stream_error() -> dict[str, Any]:
    return {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def success_headers() -> dict[str, str]:
    return _ratelimit_headers()
