"""POST /api/v1/chat/completions: the hot path.

    authenticate (memory) -> validate -> resolve model and route (memory)
    -> hold the most the request can cost (the one storage round trip, group-committed)
    -> call the upstream -> relay the answer -> settle in ``finally`` (queued, group-committed)

The settlement runs in ``finally``, so every exit — success, upstream failure, client gone,
cancellation — resolves the hold exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tokenhub.api.requests import REQUEST_ID
from tokenhub.billing.cost import Usage, max_cost, usage_cost
from tokenhub.billing.estimate import estimate_tokens, prompt_estimate, prompt_upper_bound
from tokenhub.billing.ledger import Hold, Settlement
from tokenhub.catalog.model import Model
from tokenhub.directory import KeyInfo, Route
from tokenhub.errors import GatewayError, InvalidRequest, ServiceUnavailable, UpstreamError, UpstreamTimeout
from tokenhub.gateway import Gateway
from tokenhub.money import format_usd
from tokenhub.providers import openai_protocol as oai
from tokenhub.providers.registry import SERVED_PROTOCOLS
from tokenhub.relay.sse import DONE, SSEDecoder

DEFAULT_MAX_OUTPUT = 16_384
MAX_N = 128
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class ChatCall:
    """What the relay needs to know of a chat request; the rest is forwarded untouched."""

    payload: dict[str, Any]
    model_name: str
    stream: bool
    include_usage: bool
    max_output: int | None
    n: int

    @classmethod
    def parse(cls, payload: Any) -> "ChatCall":
        if not isinstance(payload, dict):
            raise InvalidRequest("the request body must be a JSON object")
        model = payload.get("model")
        if not isinstance(model, str) or not model.strip() or len(model) > 200:
            raise InvalidRequest("'model' is required: a model id such as openai/gpt-4.1", param="model")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' is required: a non-empty array of messages", param="messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequest(f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
        stream = payload.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise InvalidRequest("'stream' must be true or false", param="stream")
        options = payload.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object", param="stream_options")
        include_usage = bool(options and options.get("include_usage") is True)
        max_output = None
        for name in ("max_completion_tokens", "max_tokens"):
            value = payload.get(name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
            max_output = value if max_output is None else min(max_output, value)
        n = payload.get("n", 1)
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
            raise InvalidRequest(f"'n' must be an integer from 1 to {MAX_N}", param="n")
        return cls(payload, model.strip(), stream, include_usage, max_output, n)


@dataclass
class Outcome:
    """How the request ended, filled in as it goes; turned into the settlement in ``finally``."""

    status: str = "error"
    http_status: int | None = None
    usage: Usage = field(default_factory=Usage)
    cost: int = 0
    finish_reason: str | None = None
    error: str | None = None
    ttfb: float | None = None


class ChatRelay:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def handle(self, request: web.Request, key: KeyInfo, payload: Any, body_size: int) -> web.StreamResponse:
        started = time.monotonic()
        call = ChatCall.parse(payload)
        directory = self.gw.directory
        model = directory.catalog.resolve(call.model_name)
        if model.kind != "chat":
            raise InvalidRequest(
                f"'{model.id}' is a {model.kind} model; use /api/v1/{'images' if model.kind == 'image' else 'videos'}/generations",
                param="model",
            )
        key.check_model(model)
        route = pick_route(directory.routes(model.id), model)
        hold = self._hold_amount(call, model, body_size)
        request_id = request[REQUEST_ID]
        await self.gw.ledger.hold(
            Hold(
                request_id=request_id,
                user_id=key.user_id,
                key_id=key.id,
                amount=hold,
                model=model.id,
                stream=call.stream,
                channel_id=route.channel.id,
                upstream_model=route.upstream_id,
            )
        )
        outcome = Outcome()
        try:
            upstream = oai.build_request(call.payload, route.upstream_id, route.channel, stream=call.stream)
            if call.stream:
                return await self._stream(request, call, model, route, upstream, outcome)
            return await self._complete(model, route, upstream, outcome, call)
        except GatewayError as err:
            outcome.error = err.message
            outcome.http_status = outcome.http_status or err.status
            raise
        finally:
            self.gw.ledger.settle(
                Settlement(
                    request_id=request_id,
                    user_id=key.user_id,
                    key_id=key.id,
                    hold=hold,
                    cost=outcome.cost,
                    status=outcome.status,
                    usage=outcome.usage,
                    http_status=outcome.http_status,
                    finish_reason=outcome.finish_reason,
                    latency_ms=int((time.monotonic() - started) * 1000),
                    ttfb_ms=int((outcome.ttfb - started) * 1000) if outcome.ttfb else None,
                    error=outcome.error,
                    prices=directory.prices_json.get(model.id),
                    channel_id=route.channel.id,
                    upstream_model=route.upstream_id,
                )
            )

    def _hold_amount(self, call: ChatCall, model: Model, body_size: int) -> int:
        prompt = prompt_upper_bound(call.payload, body_size)
        if model.context_length:
            prompt = min(prompt, model.context_length)
        cap = model.max_output_tokens or model.context_length or DEFAULT_MAX_OUTPUT
        output = min(call.max_output, cap) if call.max_output else cap
        return max_cost(prompt, output * call.n, model.pricing)

    # -- non-streaming -------------------------------------------------------------------------

    async def _complete(
        self, model: Model, route: Route, upstream: oai.UpstreamRequest, outcome: Outcome, call: ChatCall
    ) -> web.Response:
        try:
            async with self.gw.http.post(upstream.url, data=upstream.body, headers=upstream.headers) as resp:
                outcome.ttfb = time.monotonic()
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except asyncio.TimeoutError:
            raise UpstreamTimeout("the upstream provider did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"could not reach the upstream provider ({type(exc).__name__})", code="upstream_unreachable") from None
        outcome.http_status = status
        if status != 200:
            raise oai.error_from_response(status, raw, route.channel, retry_after)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            if isinstance(obj, dict) and obj.get("error"):
                raise oai.error_from_response(502, raw, route.channel)
            raise UpstreamError("the upstream provider sent a response that is not a chat completion", code="upstream_bad_response")
        usage = oai.read_usage(obj.get("usage"))
        if usage is None:
            usage = Usage(prompt_estimate(call.payload), estimate_tokens(oai.message_text(obj)), estimated=True)
        cost = usage_cost(usage, model.pricing)
        outcome.status, outcome.usage, outcome.cost = "ok", usage, cost
        outcome.finish_reason = oai.finish_reason_of(obj)
        obj["model"] = model.id
        obj["usage"] = oai.with_cost(obj.get("usage"), usage, format_usd(cost))
        return web.Response(body=orjson.dumps(obj), content_type="application/json")

    # -- streaming -----------------------------------------------------------------------------

    async def _stream(
        self, request: web.Request, call: ChatCall, model: Model, route: Route, upstream: oai.UpstreamRequest, outcome: Outcome
    ) -> web.StreamResponse:
        try:
            upstream_resp = await self.gw.http.post(upstream.url, data=upstream.body, headers=upstream.headers)
        except asyncio.TimeoutError:
            raise UpstreamTimeout("the upstream provider did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"could not reach the upstream provider ({type(exc).__name__})", code="upstream_unreachable") from None
        meter = oai.StreamMeter(model.id, call.include_usage)
        client: web.StreamResponse | None = None

        def cost_text(usage: Usage) -> str:
            return format_usd(usage_cost(usage, model.pricing))

        async def send(data: bytes) -> None:
            nonlocal client
            if client is None:
                client = web.StreamResponse(headers=SSE_HEADERS)
                await client.prepare(request)
                outcome.ttfb = time.monotonic()
            await client.write(data)

        failure: GatewayError | None = None
        client_gone = False
        try:
            outcome.http_status = upstream_resp.status
            if upstream_resp.status != 200:
                raw = await upstream_resp.read()
                raise oai.error_from_response(upstream_resp.status, raw, route.channel, upstream_resp.headers.get("Retry-After"))
            decoder = SSEDecoder()
            try:
                async for chunk in upstream_resp.content.iter_any():
                    for event in decoder.feed(chunk):
                        out = meter.on_data(event.data, cost_text)
                        if meter.error is not None:
                            break
                        if out is not None:
                            await send(out)
                    if meter.error is not None or meter.done:
                        break
                else:
                    for event in decoder.close():
                        out = meter.on_data(event.data, cost_text)
                        if out is not None and meter.error is None:
                            await send(out)
            except ConnectionResetError:
                client_gone = True
            except asyncio.TimeoutError:
                failure = UpstreamTimeout("the upstream provider stopped sending in the middle of the answer")
            except aiohttp.ClientError:
                failure = UpstreamError("the upstream connection broke in the middle of the answer", code="upstream_reset")
            except oai.MalformedChunk as exc:
                failure = exc
            if failure is None and not client_gone and meter.error is None and not meter.finished:
                failure = UpstreamError("the upstream stream ended before the answer was complete", code="upstream_truncated")
            if client is None and not client_gone:
                # Nothing reached the client yet: answer with a plain HTTP error, charge nothing.
                if meter.error is not None:
                    raise oai.error_from_response(502, orjson.dumps({"error": meter.error}), route.channel)
                if failure is not None:
                    raise failure
        finally:
            upstream_resp.close()  # stops the upstream generating if we left early

        usage = meter.usage or Usage(prompt_estimate(call.payload), meter.delivered_tokens(), estimated=True)
        outcome.usage, outcome.cost = usage, usage_cost(usage, model.pricing)
        upstream_failed = failure is not None or meter.error is not None
        if upstream_failed and meter.usage is None and usage.completion_tokens == 0:
            outcome.cost = 0  # the upstream failed before generating anything: nothing to charge
        outcome.finish_reason = meter.finish_reason
        if client_gone:
            outcome.status = "client_closed"
            return client if client is not None else web.Response(status=499)
        assert client is not None
        try:
            if meter.error is not None:
                outcome.status, outcome.error = "upstream_error", str(meter.error.get("message", ""))[:500]
                await client.write(oai.error_event(meter.error, route.channel))
            elif failure is not None:
                outcome.status, outcome.error = "truncated", failure.message
                await client.write(oai.error_event(failure))
            else:
                outcome.status = "ok"
                if call.include_usage and not meter.usage_sent:
                    await client.write(meter.final_usage_chunk(usage, format_usd(outcome.cost)))
                await client.write(DONE)
            await client.write_eof()
        except ConnectionResetError:
            outcome.status = "client_closed" if outcome.status == "ok" else outcome.status
        return client


def pick_route(routes: list[Route], model: Model) -> Route:
    """The highest-priority channels first; weighted random among them."""
    served = [r for r in routes if r.channel.protocol in SERVED_PROTOCOLS]
    if not served:
        if routes:
            raise ServiceUnavailable(
                f"'{model.id}' is served by a {routes[0].channel.provider} channel, and this gateway version does not relay "
                f"that provider's protocol yet",
                code="protocol_not_served",
            )
        raise ServiceUnavailable(
            f"no channel serves '{model.id}' right now; the operator must add one (tokenhub channel add ...)",
            code="no_channel",
        )
    top = served[0].channel.priority
    candidates = [r for r in served if r.channel.priority == top]
    if len(candidates) == 1:
        return candidates[0]
    return random.choices(candidates, weights=[r.channel.weight for r in candidates])[0]
