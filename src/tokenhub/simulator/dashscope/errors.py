"""DashScope's error bodies (``request_id``/``code``/``message``) and JSON answers."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web


def new_request_id() -> str:
    return str(uuid.uuid4())


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


class DashScopeError(Exception):
    """An error answered with DashScope's ``{"request_id", "code", "message"}`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return json_response({"request_id": new_request_id(), "code": self.code, "message": self.message}, self.status)


def status_error(status: int) -> DashScopeError:
    """The realistic DashScope error for an HTTP status (``#fake:status`` / ``#fake:poll_status``)."""
    known = {
        400: ("InvalidParameter", "The request is invalid (simulated by #fake:status=400)."),
        401: ("InvalidApiKey", "Invalid API-key provided."),
        403: ("AccessDenied", "Access denied."),
        404: ("ModelNotFound", "Model can not be found."),
        408: ("RequestTimeOut", "Request timed out, please try again later."),
        429: ("Throttling", "Requests throttling triggered."),
        500: ("InternalError", "An internal error has occured, please try again later or contact service support."),
        503: ("ServiceUnavailable", "Service temporarily unavailable, please try again later."),
        504: ("RequestTimeOut", "Request timed out, please try again later."),
    }
    code, message = known.get(
        status, ("InternalError" if status >= 500 else "InvalidParameter", f"Simulated HTTP {status} error.")
    )
    return DashScopeError(status, code, message)


def invalid(message: str) -> DashScopeError:
    return DashScopeError(400, "InvalidParameter", message)
