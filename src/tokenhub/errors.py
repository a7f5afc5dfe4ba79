"""One error tree, rendered once.

Everything the gateway refuses or fails at is a ``GatewayError``. The HTTP layer renders it into
the OpenAI error format (``{"error": {"message", "type", "code", "param"}}``); the CLI prints its
message and exits non-zero. Messages never carry secrets or internal URLs.

    GatewayError
    ├── InvalidRequest        400 invalid_request_error
    ├── AuthenticationFailed  401 authentication_error
    ├── InsufficientCredits   402 insufficient_quota
    ├── PermissionDenied      403 permission_error
    ├── NotFound              404 not_found_error
    ├── RequestTimeout        408 invalid_request_error (the client sent its request too slowly)
    ├── Conflict              409 conflict_error
    ├── PayloadTooLarge       413 invalid_request_error
    ├── RateLimited           429 rate_limit_error
    ├── UpstreamError         502 upstream_error      (the upstream failed or answered nonsense)
    ├── ServiceUnavailable    503 service_unavailable (no channel, not served yet, storage down)
    └── UpstreamTimeout       504 timeout_error
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.headers = headers or {}

    def to_openai(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class InsufficientCredits(GatewayError):
    status = 402
    type = "insufficient_quota"
    code = "insufficient_credits"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(GatewayError):
    status = 409
    type = "conflict_error"
    code = "conflict"


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class LimitReached(RateLimited):
    """A limit of the caller's key or account (not the upstream's): ``scope`` key | account,
    ``limit`` rpm | tpm | concurrency | day | week | month | total. Counted in the metrics."""

    def __init__(self, message: str, *, scope: str, limit: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.scope = scope
        self.limit = limit


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
