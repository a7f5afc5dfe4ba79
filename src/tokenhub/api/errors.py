"""The one middleware every request passes through, and every failure rendered once, in the route's error
format (OpenAI's, Anthropic's or Google's); never a stack trace."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from tokenhub.errors import GatewayError, InvalidRequest, LimitReached, NotFound, PayloadTooLarge, RequestTimeout
from tokenhub.logs import REQUEST_ID_VAR
from tokenhub.providers.anthropic.message import error_body
from tokenhub.providers.gemini.responder import google_error
from tokenhub.request_keys import REQUEST_ID
from tokenhub.surface import GATEWAY, RequestIds

log = logging.getLogger("tokenhub.api")

MAX_BODY = web.AppKey("max_body_bytes", int)
# Renders a not-found page for browsers (the console's), for paths outside the APIs.
HTML_NOT_FOUND = web.AppKey("html_not_found", Callable[[web.Request], Awaitable[web.StreamResponse]])
API_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics", "/static/")

def error_response(err: GatewayError) -> web.Response:
    return web.Response(status=err.status, body=orjson.dumps(err.to_openai()), content_type="application/json", headers=err.headers)


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> GatewayError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(f"the request body is larger than {request.app[MAX_BODY]} bytes")
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"no route {request.method} {request.path}", code="route_not_found")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return InvalidRequest(f"{request.method} is not allowed on {request.path}", code="method_not_allowed", status=405)
    return GatewayError(exc.reason or "error", status=exc.status, code=None)


def _in_route_format(request: web.Request, err: GatewayError) -> web.Response:
    """``err`` as the route renders its errors: Anthropic's format under /api/v1/messages (and for the
    Anthropic SDKs' model lookups), Google's for the
    Gemini API (/api/v1beta, and /api/v1/models/...:method), OpenAI's elsewhere."""
    path = request.path
    if path.startswith("/api/v1/messages") or (path.startswith("/api/v1/models") and "anthropic-version" in request.headers):
        body = orjson.dumps(error_body(err.status, err.message))
        return web.Response(status=err.status, body=body, content_type="application/json", headers=err.headers)
    if path.startswith("/api/v1beta/") or (path.startswith("/api/v1/models/") and ":" in path):
        body = orjson.dumps(google_error(err.status, err.message))
        return web.Response(status=err.status, body=body, content_type="application/json", headers=err.headers)
    return error_response(err)


async def _read_body_in_time(request: web.Request, timeout: float, min_rate: int) -> bool:
    """Read the whole body (aiohttp keeps it for the handler) unless the client sends it too slowly:
    it has ``timeout`` seconds, plus one more second for every ``min_rate`` bytes it has sent."""
    if request.content.is_eof():  # all there already (most bodies arrive with their headers)
        await request.read()
        return True
    loop = asyncio.get_running_loop()
    start = loop.time()
    reading = asyncio.ensure_future(request.read())
    try:
        while True:
            remaining = start + timeout + request.content.total_bytes / min_rate - loop.time()
            if remaining <= 0:
                reading.cancel()
                return False
            done, _ = await asyncio.wait((reading,), timeout=remaining)
            if done:
                reading.result()  # a body over the size limit raises here (413)
                return True
    finally:
        if not reading.done():
            reading.cancel()


def request_middleware(body_timeout: float, body_min_rate: int) -> Any:
    """The one middleware every request passes through (one layer: each coroutine a request awaits
    through is resumed at each of its waits):

    * its request id, minted here, on every log line and response of the request;
    * its body held to a deadline (TOKENHUB_BODY_TIMEOUT and TOKENHUB_BODY_MIN_RATE): a client that
      trickles its body gets a 408 and its connection closed. Headers have their own deadline
      (TOKENHUB_HEADER_TIMEOUT, the server's keep-alive timeout: see app.py);
    * registered with the gateway while it runs (relay/inflight.py: the drain, clients that leave);
    * every failure rendered once, in the route's error format; never a stack trace."""
    new_request_id = RequestIds()

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        request_id = request[REQUEST_ID] = new_request_id()
        REQUEST_ID_VAR.set(request_id)  # every log line of this request carries it (tokenhub.logs)
        gateway = request.app.get(GATEWAY)
        try:
            if request.body_exists:
                late = await _body_late(request, body_timeout, body_min_rate)
                if late is not None:
                    return late
            if gateway is None:
                return await handler(request)
            return await gateway.inflight.serve(request, handler)
        except GatewayError as err:
            if isinstance(err, LimitReached) and gateway is not None:
                gateway.metrics.limited.labels(err.scope, err.limit).inc()
            return _in_route_format(request, err)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            html_page = request.app.get(HTML_NOT_FOUND)
            if exc.status == 404 and html_page is not None and not request.path.startswith(API_PREFIXES):
                return await html_page(request)
            return _in_route_format(request, _from_http_exception(exc, request))
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return error_response(GatewayError("internal error; the request id helps the operator find it"))

    return middleware


async def _body_late(request: web.Request, timeout: float, min_rate: int) -> web.StreamResponse | None:
    """Read the body in time: nothing, or the answer to a body too large or too late (sent, and the
    connection closed, for one too late)."""
    try:
        in_time = await _read_body_in_time(request, timeout, min_rate)
    except web.HTTPRequestEntityTooLarge:
        return _in_route_format(request, PayloadTooLarge(f"the request body is larger than {request.app[MAX_BODY]} bytes"))
    if in_time:
        return None
    late = RequestTimeout(f"the request body did not arrive within the time allowed ({timeout:g} s)")
    response = _in_route_format(request, late)
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()  # the rest of a trickled body is not worth waiting for
    return response
