"""Anthropic-compatible inbound: POST /api/v1/messages and /api/v1/messages/count_tokens.

Every catalog chat model answers here. The request is translated to the gateway's OpenAI shape
(for validation, the hold and non-Anthropic upstreams); when the model's channel *is* Anthropic,
the client's own body and headers go upstream unchanged but for the model id (pass-through), so
Claude Code's betas, tools, thinking and context management all keep working. Errors use
Anthropic's format.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tokenhub.api.requests import REQUEST_ID, authenticate, read_json
from tokenhub.api.routes import RouteGroup
from tokenhub.billing.estimate import prompt_estimate
from tokenhub.directory import Route
from tokenhub.errors import GatewayError, PayloadTooLarge, UpstreamError, UpstreamTimeout
from tokenhub.providers import anthropic_protocol as anth
from tokenhub.providers.base import UpstreamRequest, upstream_error
from tokenhub.relay.anthropic_format import error_body, translate_messages_request
from tokenhub.relay.anthropic_responder import AnthropicResponder
from tokenhub.relay.call import ChatCall
from tokenhub.relay.client_fields import without_upstream_fields
from tokenhub.relay.relay import Relay
from tokenhub.relay.routing import pick_route

PASSED_HEADERS = ("anthropic-beta",)


def anthropic_error(err: GatewayError) -> web.Response:
    return web.Response(
        status=err.status, body=orjson.dumps(error_body(err.status, err.message)), content_type="application/json", headers=err.headers
    )


def _client_headers(request: web.Request) -> dict[str, str]:
    return {name: request.headers[name] for name in PASSED_HEADERS if name in request.headers}


def native_request(body: dict[str, Any], route: Route, request: web.Request, *, path: str = "/messages") -> UpstreamRequest:
    """The client's Anthropic request for an Anthropic upstream: its body with our model id and our key."""
    forwarded = dict(without_upstream_fields(body))  # never forwarded: the gateway picks the upstream and its key
    forwarded["model"] = route.upstream_id
    url = anth.messages_url(route.channel.base_url) + path.removeprefix("/messages")
    if request.query.get("beta") == "true":
        url += "?beta=true"
    headers = {
        "x-api-key": route.channel.api_key,
        "anthropic-version": request.headers.get("anthropic-version") or anth.ANTHROPIC_VERSION,
        "content-type": "application/json",
        **_client_headers(request),
    }
    max_tokens = body.get("max_tokens")
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
            relay = Relay(gw)
            model = relay.resolve(call.model_name, key)

            def native(route: Route) -> UpstreamRequest | None:
                if route.channel.protocol == "anthropic":
                    return native_request(body, route, request)  # pass-through: the client's own request
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
        """Exact from Anthropic upstreams; elsewhere the gateway's estimate (about 4 characters per token)."""
        try:
            gw = self.gw
            key = authenticate(request, gw.directory)
            body, _ = await self._read(request)
            if isinstance(body, dict) and "max_tokens" not in body:
                body = {**body, "max_tokens": 1}
            translation = translate_messages_request(body, lenient=True)
            payload = translation.payload
            model = Relay(gw).resolve(str(payload.get("model")), key)
            route = pick_route(gw.directory.routes(model.id), model)
            if route.channel.protocol == "anthropic":
                counted = dict(body)
                counted.pop("max_tokens", None)
                counted.pop("stream", None)
                return await self._upstream_count(native_request(counted, route, request, path="/messages/count_tokens"), route)
            translation.require_translatable()
            return web.json_response({"input_tokens": prompt_estimate(payload)})
        except GatewayError as err:
            return anthropic_error(err)

    async def _upstream_count(self, upstream: UpstreamRequest, route: Route) -> web.Response:
        try:
            async with self.gw.http.post(upstream.url, data=upstream.body, headers=upstream.headers) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except asyncio.TimeoutError:
            raise UpstreamTimeout("the upstream provider did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"could not reach the upstream provider ({type(exc).__name__})", code="upstream_unreachable") from None
        if status != 200:
            raise upstream_error(status, anth.error_detail(raw), route.channel, retry_after)
        try:
            counted = orjson.loads(raw)
            return web.json_response({"input_tokens": int(counted["input_tokens"])})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UpstreamError("the upstream provider sent a token count the gateway cannot read", code="upstream_bad_response") from None
