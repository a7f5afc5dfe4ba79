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
from typing import Any

import orjson
from aiohttp import web

from tokenhub.billing.bill import Bill
from tokenhub.billing.ledger import Hold, Settlement
from tokenhub.billing.service import balance_of
from tokenhub.errors import GatewayError, InsufficientCredits, PayloadTooLarge, UpstreamError
from tokenhub.providers.anthropic.inbound import translate_messages_request
from tokenhub.providers.anthropic.message import error_body
from tokenhub.providers.anthropic.passthrough import MessagesRequest, client_headers, native_request
from tokenhub.providers.anthropic.responder import AnthropicResponder
from tokenhub.providers.anthropic.server_tools import plan_server_tools
from tokenhub.providers.anthropic.wire import error_detail
from tokenhub.providers.base import UpstreamRequest, upstream_error
from tokenhub.providers.registry import chat_adapter
from tokenhub.providers.upstream_http import fetch
from tokenhub.relay.admission import admit
from tokenhub.relay.call import ChatCall
from tokenhub.relay.inflight import shutting_down, uncancel
from tokenhub.relay.relay import Relay
from tokenhub.relay.routing import pick_route
from tokenhub.request_keys import REQUEST_ID
from tokenhub.surface import RouteGroup, authenticate, read_json
from tokenhub.tokens import prompt_estimate
from tokenhub.upstream import Route


def anthropic_error(err: GatewayError) -> web.Response:
    return web.Response(
        status=err.status, body=orjson.dumps(error_body(err.status, err.message)), content_type="application/json", headers=err.headers
    )


class MessagesAPI(RouteGroup):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/messages", self.messages),
            web.post("/api/v1/messages/count_tokens", self.count_tokens),
            web.head("/api", self.preconnect),
        ]

    async def preconnect(self, request: web.Request) -> web.Response:
        """Claude Code opens its connection with ``HEAD $ANTHROPIC_BASE_URL`` before the first call: 200."""
        return web.Response(status=200)

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
            if any(AnthropicResponder.relays(chat_adapter(r.channel.protocol)) for r in gw.directory.routes(model.id)):
                # server tools reach the upstream only on a pass-through route: price them (400 if a tool has no
                # price), cap their uses, and hold for the cap whichever route answers
                plan = plan_server_tools(body, model.pricing, model.id)
                forwarded, call.server_tools = plan.body, plan.uses
            responder = AnthropicResponder(
                model.id,
                "msg_" + request[REQUEST_ID].removeprefix("gen-"),
                tool_names=translation.tool_names,
                input_tokens=prompt_estimate(translation.payload),
            )
            client_request = MessagesRequest(forwarded, translation, request.headers, beta=request.query.get("beta") == "true")
            return await relay.handle(
                request, key, call, size, responder, model=model, client_request=client_request,
                extra_headers=client_headers(request.headers),
            )  # fmt: skip
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
            key = authenticate(request, gw.directory)
            body, _ = await self._read(request)
            if isinstance(body, dict) and "max_tokens" not in body:
                body = {**body, "max_tokens": 1}
            translation = translate_messages_request(body, lenient=True)
            model = Relay(gw).resolve(str(translation.payload.get("model")), key)
            route = pick_route(gw.directory.routes(model.id), model)
            native = AnthropicResponder.relays(chat_adapter(route.channel.protocol))
            if not native:
                translation.require_translatable()
            ticket = await admit(gw.rates, key, request)
            try:
                await self._require_credit(key.user_id)
                hold = Hold(request[REQUEST_ID], key.user_id, key.id, 0, model.id, endpoint="count_tokens",
                            channel_id=route.channel.id, upstream_model=route.upstream_id)  # fmt: skip

                def settled(settlement: Settlement) -> None:
                    gw.metrics.settled("count_tokens", model.id, settlement)

                async with Bill(gw.ledger, hold, on_settled=settled) as bill:
                    return await self._count(request, body, translation.payload, route, native, bill)
            finally:
                if ticket is not None:
                    ticket.release(0)
        except GatewayError as err:
            return anthropic_error(err)

    async def _count(
        self, request: web.Request, body: dict[str, Any], payload: dict[str, Any], route: Route, native: bool, bill: Bill
    ) -> web.Response:
        """The count itself, watched like a relay call; what happened is recorded on ``bill``."""
        gw = self.gw
        try:
            gw.inflight.watch()  # a client that leaves, or the drain's deadline, cancels the upstream call
            if native:
                counted = {k: v for k, v in body.items() if k not in ("max_tokens", "stream")}
                upstream = native_request(counted, route, request.headers, beta=request.query.get("beta") == "true",
                                          path="/messages/count_tokens")  # fmt: skip
                response = await self._upstream_count(upstream, route)
            else:
                response = web.json_response({"input_tokens": prompt_estimate(payload)})
            bill.status, bill.http_status = "ok", 200
            return response
        except GatewayError as err:
            bill.http_status, bill.error = err.status, err.message
            raise
        except asyncio.CancelledError:
            if not gw.inflight.cut_off:
                bill.status = "client_closed"
                raise
            uncancel()  # the drain's deadline: answer 503
            err = shutting_down()
            bill.status, bill.http_status, bill.error = "interrupted", err.status, err.message
            raise err from None

    async def _require_credit(self, user_id: int) -> None:
        """Counting is free, but only for accounts that could pay for the request they are counting."""
        async with self.gw.engine.connect() as conn:
            balance = await balance_of(conn, user_id)
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
