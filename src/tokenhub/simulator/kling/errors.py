"""Kling's error envelope (HTTP status + business code) and request ids."""

from __future__ import annotations

import uuid

import orjson
from aiohttp import web


class KlingError(Exception):
    """An error answered in Kling's envelope (HTTP status + business code)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        body = {"code": self.code, "message": self.message, "request_id": new_request_id()}
        return web.Response(status=self.status, body=orjson.dumps(body), content_type="application/json")


def invalid(message: str) -> KlingError:
    return KlingError(400, 1201, message)


# HTTP status → (Kling code, message) for #fake:status / #fake:poll_status.
STATUS_ERRORS: dict[int, tuple[int, str]] = {
    400: (1200, "Invalid request parameters (simulated)."),
    401: (1000, "Authentication failed (simulated)."),
    403: (1103, "No permission for the requested API or model (simulated)."),
    404: (1203, "The requested resource does not exist (simulated)."),
    429: (1302, "Requests are too frequent; the rate limit was exceeded (simulated)."),
    500: (5000, "Internal server error (simulated)."),
    503: (5001, "Service temporarily unavailable, possibly under maintenance (simulated)."),
    504: (5002, "Internal server timeout (simulated)."),
}


def status_error(status: int) -> KlingError:
    """The Kling error for an HTTP status (unlisted 4xx → 1200, unlisted 5xx → 5000)."""
    code, message = STATUS_ERRORS.get(status, (5000 if status >= 500 else 1200, f"Simulated HTTP {status} error."))
    return KlingError(status, code, message)


def concurrency_error() -> KlingError:
    return KlingError(429, 1303, "parallel task over resource pack limit")


def new_request_id() -> str:
    return str(uuid.uuid4())
