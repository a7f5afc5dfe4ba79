"""Anthropic-compatible inbound: POST /api/v1/messages and /api/v1/messages/count_tokens.

Every catalog chat model answers here. The request is translated to the gateway's OpenAI shape
(for validation, the hold and non-Anthropic upstreams); when the model's channel *is* Anthropic,
the client's own body and headers go upstream unchanged but for the model id (pass-through), so
Claude Code's betas, tools, thinking and context management all keep working. Server tools the
upstream would run and bill (web search, ...) are priced from the catalog, refused when they have
no price, and capped (``max_uses``) so the hold covers them: see :mod:`tokenhub.providers.server_tools`.
Errors use Anthropic's format.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import select

from tokenhub.api.requests import authenticate, read_json
from tokenhub.api.routes import RouteGroup
from tokenhub.billing.estimate import prompt_estimate
from tokenhub.billing.ledger import Hold, Settlement
from tokenhub.errors import GatewayError, InsufficientCredits, PayloadTooLarge, UpstreamError
from tokenhub.limits.gate import admit
from tokenhub.providers.anthropic.inbound import translate_messages_request
from tokenhub.providers.anthropic.message import error_body
from tokenhub.providers.anthropic.responder import AnthropicResponder
from tokenhub.providers.anthropic.server_tools import plan_server_tools
from tokenhub.providers.anthropic.wire import ANTHROPIC_VERSION, error_detail, messages_url
from tokenhub.providers.base import UpstreamRequest, upstream_error
from tokenhub.providers.upstream_http import fetch
from tokenhub.relay.call import ChatCall
from tokenhub.relay.client_fields import without_upstream_fields
from tokenhub.relay.inflight import shutting_down, uncancel
from tokenhub.relay.relay import Relay
from tokenhub.relay.routing import pick_route
from tokenhub.request_keys import REQUEST_ID
from tokenhub.storage.tables import users
from tokenhub.upstream import Route

PASSED_HEADERS = ("anthropic-beta",)


def anthropic_error(err: GatewayError) -> web.Response:
    return web.Response(
        status=err.status, body=orjson.dumps(error_body(err.status, err.message)), content_type="application/json", headers=err.headers
    )


def _client_headers(request: web.Request) -> dict[str, str]:
    return {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}


def native_request(
    body: dict[str, Any], route: Route, request: web.Request, *, path: str = "/messages", max_output: int | None = None
) -> UpstreamRequest:
    """The client's Anthropic request for an Anthropic upstream: its body with our model id, our key and
    ``max_output`` as ``max_tokens`` (the client's, clamped to the model's cap: what the hold covers)."""
    forwarded = dict(without_upstream_fields(body))  # never forwarded: the gateway picks the upstream and its key
    forwarded["model"] = route.upstream_id
    if max_output is not None:
        forwarded["max_tokens"] = max_output
    url = messages_url(route.channel.base_url) + path.removeprefix("/messages")
    if request.query.get("beta") == "true":
        url += "?beta=true"
    headers = {
        "x-api-key": route.channel.api_key,
        "anthropic-version": request.headers.get("anthropic-version") or ANTHROPIC_VERSION,
        "content-type": "application/json",
        **_client_headers(request),
    }
    max_tokens = forwarded.get("max_tokens")
    return UpstreamRequest(url, headers, orjson.dumps(forwarded), max_output=max_tokens if isinstance(max_tokens, int) else None)


class MessagesAPI(RouteGroup):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/messages", self.messages),
            web.post("/api/v1/messages/count_tokens", self.count_tokens),
        ]

    async def _read(self, request: web.Request) -> tuple[Any, int]:
        try:
            return await read_json(request, self.gw.settings.max_body_bytes)
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(f"the request body is larger than {self.gw.settings.max_body_bytes} bytes") from None

    async def messages(self, request: web.Request) -> web.StreamResponse:
        try:
            gw = self.gw
            key = authenticate(request, gw.directory)
            body, size = await self._read(request)
            translation = translate_messages_request(body, lenient=True)
            call = ChatCall.parse(translation.payload)
            call.opaque_input = bool(translation.unsupported)  # e.g. Files API documents: sizes unknown here
            relay = Relay(gw)
            model = relay.resolve(call.model_name, key)
            forwarded = body
            if any(r.channel.protocol == "anthropic" for r in gw.directory.routes(model.id)):
                # server tools reach the upstream only on a pass-through route: price them (400 if a tool has no
                # price), cap their uses, and hold for the cap whichever route answers
                plan = plan_server_tools(body, model.pricing, model.id)
                forwarded, call.server_tools = plan.body, plan.uses

            def native(route: Route, max_output: int) -> UpstreamRequest | None:
                if route.channel.protocol == "anthropic":
                    return native_request(forwarded, route, request, max_output=max_output)  # pass-through: the client's own request
                translation.require_translatable()  # what only Anthropic itself understands (file ids, ...)
                return None

            responder = AnthropicResponder(
                model.id,
                "msg_" + request[REQUEST_ID].removeprefix("gen-"),
                tool_names=translation.tool_names,
                input_tokens=prompt_estimate(translation.payload),
            )
            return await relay.handle(
                request, key, call, size, responder, model=model, native=native, extra_headers=_client_headers(request)
            )
        except GatewayError as err:
            return anthropic_error(err)

    async def count_tokens(self, request: web.Request) -> web.Response:
        """Exact from Anthropic upstreams; elsewhere the gateway's estimate (about 4 characters per token).

        Free, but admitted like any request — the key, its model allow-list, its rate limits, and a
        positive balance (an Anthropic count is a call on the operator's key) — and recorded in usage
        as a request of endpoint ``count_tokens`` costing 0 (a hold of 0, then its settlement). Watched
        like a relay call (relay/inflight.py): a client that leaves or the drain's deadline ends it.
        """
        try:
            gw = self.gw
            started = time.monotonic()
            key = authenticate(request, gw.directory)
            body, _ = await self._read(request)
            if isinstance(body, dict) and "max_tokens" not in body:
                body = {**body, "max_tokens": 1}
            translation = translate_messages_request(body, lenient=True)
            payload = translation.payload
            model = Relay(gw).resolve(str(payload.get("model")), key)
            route = pick_route(gw.directory.routes(model.id), model)
            if route.channel.protocol != "anthropic":
                translation.require_translatable()
            request_id = request[REQUEST_ID]
            ticket = await admit(gw.rates, key, request)
            try:
                await self._require_credit(key.user_id)
                await gw.ledger.hold(
                    Hold(request_id, key.user_id, key.id, 0, model.id, endpoint="count_tokens",
                         channel_id=route.channel.id, upstream_model=route.upstream_id)
                )  # fmt: skip
            except BaseException:
                if ticket is not None:
                    ticket.release(0)
                raise
            status, http_status, error = "error", None, None
            try:
                gw.inflight.watch()  # a client that leaves, or the drain's deadline, cancels the upstream call
                if route.channel.protocol == "anthropic":
                    counted = dict(body)
                    counted.pop("max_tokens", None)
                    counted.pop("stream", None)
                    response = await self._upstream_count(native_request(counted, route, request, path="/messages/count_tokens"), route)
                else:
                    response = web.json_response({"input_tokens": prompt_estimate(payload)})
                status, http_status = "ok", 200
                return response
            except GatewayError as err:
                http_status, error = err.status, err.message
                raise
            except asyncio.CancelledError:
                if not gw.inflight.cut_off:
                    status = "client_closed"
                    raise
                uncancel()  # the drain's deadline: answer 503
                err = shutting_down()
                status, http_status, error = "interrupted", err.status, err.message
                raise err from None
            finally:
                if ticket is not None:
                    ticket.release(0)
                settlement = Settlement(
                    request_id, key.user_id, key.id, hold=0, cost=0, status=status, http_status=http_status,
                    latency_ms=int((time.monotonic() - started) * 1000), error=error,
                    channel_id=route.channel.id, upstream_model=route.upstream_id,
                )  # fmt: skip
                gw.ledger.settle(settlement)
                gw.metrics.settled("count_tokens", model.id, settlement)
        except GatewayError as err:
            return anthropic_error(err)

    async def _require_credit(self, user_id: int) -> None:
        """Counting is free, but only for accounts that could pay for the request they are counting."""
        async with self.gw.engine.connect() as conn:
            balance = await conn.scalar(select(users.c.balance).where(users.c.id == user_id))
        if balance is None or balance <= 0:
            raise InsufficientCredits("Insufficient credits: the balance is $0. Add credits to use this endpoint.",
                                      code="insufficient_credits")  # fmt: skip

    async def _upstream_count(self, upstream: UpstreamRequest, route: Route) -> web.Response:
        status, raw, retry_after = await fetch(self.gw.http, upstream)
        if status != 200:
            raise upstream_error(status, error_detail(raw), route.channel, retry_after)
        try:
            counted = orjson.loads(raw)
            return web.json_response({"input_tokens": int(counted["input_tokens"])})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UpstreamError("the upstream provider sent a token count the gateway cannot read", code="upstream_bad_response") from None
