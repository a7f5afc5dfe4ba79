"""Ark's error bodies (``error.code``/``message``/``param``/``type``) and request ids."""

from __future__ import annotations

import secrets
import time

import orjson
from aiohttp import web

ERROR_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}
STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", "One or more parameters specified in the request are not valid (simulated)."),
    401: ("AuthenticationError", "The API key or AK/SK in the request is missing or invalid."),
    403: ("AccountOverdueError", "The request failed because your account has an overdue balance."),
    404: ("InvalidEndpointOrModel.NotFound", "The model or endpoint does not exist or you do not have access to it."),
    429: (
        "RateLimitExceeded.EndpointRPMExceeded",
        "The Requests Per Minute (RPM) limit of the associated endpoint for your account has been exceeded.",
    ),
    500: ("InternalServiceError", "The service encountered an unexpected internal error."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}


class ArkError(Exception):
    """An error answered as Ark's JSON error body (the request id is appended to the message)."""

    def __init__(
        self, status: int, code: str, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    def response(self, request_id: str) -> web.Response:
        type_ = ERROR_TYPES.get(self.status, "InternalServerError" if self.status >= 500 else "BadRequest")
        body = {
            "error": {
                "code": self.code,
                "message": f"{self.message} Request id: {request_id}",
                "param": self.param,
                "type": type_,
            }
        }
        return web.Response(status=self.status, body=orjson.dumps(body), content_type="application/json", headers=self.headers)


def invalid(param: str, detail: str) -> ArkError:
    return ArkError(
        400, "InvalidParameter", f"The parameter `{param}` specified in the request is not valid: {detail}.", param=param
    )


def missing(param: str) -> ArkError:
    return ArkError(
        400,
        "MissingParameter",
        f"The request failed because it is missing one or multiple required parameters: `{param}`.",
        param=param,
    )


def status_error(status: int, code: str | None = None, retry_after: str | None = None) -> ArkError:
    """The realistic Ark error for an HTTP status (``#fake:status`` / ``#fake:poll_status``)."""
    default_code, message = STATUS_ERRORS.get(
        status, ("InternalServiceError" if status >= 500 else "InvalidParameter", f"Simulated HTTP {status} error.")
    )
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return ArkError(status, code or default_code, message, headers=headers)


REQUEST_ID_KEY = web.RequestKey("tokenhub_fake_ark_request_id", str)


def new_request_id() -> str:
    return f"02{int(time.time() * 1000)}{secrets.token_hex(16)}"
