"""Google's error bodies (``code``/``message``/``status``, field violations) and the 404 HTML page."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def pretty_json(obj: Any) -> bytes:
    """Google's non-stream body formatting: 2-space indent, trailing newline."""
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def compact_json(obj: Any) -> bytes:
    """Google's SSE event formatting: ``{"a": 1,"b": [2,3]}``."""
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False).encode()


class GeminiError(Exception):
    """An error answered in Google's JSON error format."""

    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.error: dict[str, Any] = {"code": code, "message": message, "status": status or GRPC_STATUS.get(code, "UNKNOWN")}
        if details:
            self.error["details"] = details

    @property
    def body(self) -> dict[str, Any]:
        return {"error": self.error}

    def response(self, wrap_in_array: bool = False) -> web.Response:
        body: Any = [self.body] if wrap_in_array else self.body
        return web.Response(status=self.code, body=pretty_json(body), content_type="application/json", charset="UTF-8")


def invalid(message: str, details: list[dict[str, Any]] | None = None) -> GeminiError:
    return GeminiError(400, message, details)


def field_issue(path: str, message: str) -> str:
    return f"* GenerateContentRequest.{path}: {message}\n"


def unknown_name_error(violations: list[tuple[str, str]]) -> GeminiError:
    """Proto JSON parsing rejection: [(location, name)] → Google's message + BadRequest detail."""
    descriptions = [
        (
            location,
            f'Invalid JSON payload received. Unknown name "{name}"'
            + (f" at '{location}'" if location else "")
            + ": Cannot find field.",
        )
        for location, name in violations
    ]
    return invalid(
        "\n".join(d for _, d in descriptions),
        [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": loc, "description": d} if loc else {"description": d} for loc, d in descriptions],
            }
        ],
    )


def api_key_invalid() -> GeminiError:
    message = "API key not valid. Please pass a valid API key."
    return invalid(
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
        ],
    )


def model_not_found(model: str, version: str, method: str) -> GeminiError:
    return GeminiError(
        404,
        f"models/{model} is not found for API version {version}, or is not supported "
        f"for {method}. Call ListModels to see the list of available models and their "
        "supported methods.",
    )


def status_error(code: int, model: str, version: str, method: str, retry_after: str | None = None) -> GeminiError:
    """The realistic Gemini error for an HTTP status (``#fake:status=CODE``)."""
    if code == 400:
        return invalid("Request contains an invalid argument.")
    if code == 401:
        return GeminiError(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        )
    if code == 403:
        return GeminiError(403, "The caller does not have permission")
    if code == 404:
        return model_not_found(model, version, method)
    if code == 429:
        delay = retry_after or "1"
        delay = delay if delay.endswith("s") else delay + "s"
        metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        return GeminiError(
            429,
            (
                "You exceeded your current quota, please check your plan and billing details. For more information "
                "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current "
                f"usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: {metric}, "
                f"limit: 10, model: {model}\nPlease retry in {delay}."
            ),
            [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": metric,
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": "10",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
            ],
        )
    if code == 500:
        return GeminiError(
            500,
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
        )
    if code == 503:
        return GeminiError(503, "The model is overloaded. Please try again later.")
    if code == 504:
        return GeminiError(504, "Deadline expired before operation could complete.")
    return GeminiError(code, f"Simulated HTTP {code} error.")


def mid_stream_error() -> dict[str, Any]:
    return status_error(500, "", "", "").body


NOT_FOUND_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
    "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not "
    "found on this server.  <ins>That\u2019s all we know.</ins>\n"
)
