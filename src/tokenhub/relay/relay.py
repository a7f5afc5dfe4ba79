"""The hot path, for every chat endpoint and every upstream protocol.

    resolve the model and a route (memory) -> hold the most the request can cost (the one storage
    round trip, group-committed) -> the adapter builds the upstream request -> call it -> the
    responder answers in the client's protocol -> settle in ``finally`` (queued, group-committed)

The settlement runs in ``finally``, so every exit — success, upstream failure, client gone,
cancellation — resolves the hold exactly once. Response headers go out with the first event worth
sending, not before: until then any failure is still a plain HTTP error and nothing is charged.

Once the hold is taken the call is *watched* (relay/inflight.py): its task is cancelled when the
client's connection closes, or at the drain's deadline on SIGTERM (``cut_off``). Before the first
byte the first is recorded as ``client_closed`` and the second answered 503, both free; in a
stream both are ended like any other cut-short stream — the client gone, or an error event in the
client's protocol (``interrupted``) — and charged for what was delivered.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Protocol

import aiohttp
from aiohttp import web

from tokenhub.billing.cost import Usage, max_cost, tool_hold, usage_cost
from tokenhub.billing.estimate import estimate_tokens, prompt_estimate, prompt_upper_bound
from tokenhub.billing.ledger import Hold, Settlement
from tokenhub.catalog.model import Model
from tokenhub.directory import KeyInfo
from tokenhub.errors import GatewayError, InvalidRequest, ServiceUnavailable, UpstreamError
from tokenhub.limits.gate import admit
from tokenhub.money import format_usd
from tokenhub.providers.adapters import CHAT_ADAPTERS
from tokenhub.providers.base import ChatAdapter, MalformedChunk, UpstreamRequest, redacted
from tokenhub.providers.openai.wire import finish_reason_of, message_text
from tokenhub.providers.upstream_http import NETWORK_FAILURES, mapped_failures, upstream_failure
from tokenhub.relay.call import ChatCall
from tokenhub.relay.inflight import shutting_down, uncancel
from tokenhub.relay.routing import admitted, candidates, judge
from tokenhub.request_keys import REQUEST_ID
from tokenhub.sse import Event, SSEDecoder
from tokenhub.upstream import Channel, Route

if TYPE_CHECKING:  # the gateway wires the relay in: a type only, never an import cycle
    from tokenhub.gateway import Gateway

DEFAULT_MAX_OUTPUT = 16_384
MAX_REMOTE_IMAGES = 16
MAX_ATTEMPTS = 3  # channels tried for one request, at most
FAILOVER_DEADLINE = 120.0  # seconds after which a failure is answered instead of tried elsewhere
CUT_TAIL_TIMEOUT = 1.0  # seconds a stream cut at the drain's deadline may take to send its error event


class StreamPipe(Protocol):
    """Upstream SSE events in, bytes for the client out (see openai_responder.py)."""

    usage: Usage | None
    finish_reason: str | None
    error: dict[str, Any] | None
    finished: bool

    def feed(self, event: Event) -> bytes: ...

    def close(self) -> bytes: ...

    def delivered_tokens(self) -> int: ...

    def ending(self, usage: Usage, cost_text: str) -> bytes: ...

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes: ...


class Responder(Protocol):
    """Speaks the client's protocol (OpenAI chat, Anthropic messages)."""

    sse_headers: dict[str, str]
    endpoint: str  # for metrics: chat | messages

    def completion(self, body: dict[str, Any], usage: Usage, cost_text: str) -> web.Response: ...

    def pipe(self, adapter: ChatAdapter, cost_text: Any, channel: Channel) -> StreamPipe: ...


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
    started: bool = False  # the response's headers went out (a stream began)


class Relay:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def resolve(self, model_name: str, key: KeyInfo) -> Model:
        """The catalog model a client means, checked against its key."""
        model = self.gw.directory.catalog.resolve(model_name)
        if model.kind != "chat":
            raise InvalidRequest(
                f"'{model.id}' is a {model.kind} model; use /api/v1/{'images' if model.kind == 'image' else 'videos'}/generations",
                param="model",
            )
        key.check_model(model)
        return model

    async def handle(
        self,
        request: web.Request,
        key: KeyInfo,
        call: ChatCall,
        body_size: int,
        responder: Responder,
        *,
        model: Model | None = None,
        native: Callable[[Route, int], UpstreamRequest | None] | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Serve one chat request, failing over between channels until the first byte is sent.

        ``native(route, max_output)`` may give the upstream request itself (the /messages pass-through
        to Anthropic, forwarding ``max_output`` as its output bound); otherwise the route's adapter
        builds it.
        """
        started = time.monotonic()
        model = model or self.resolve(call.model_name, key)
        routes = candidates(self.gw.directory.routes(model.id), model)
        health = self.gw.health
        first = routes[0]
        cap = model.max_output_tokens or model.context_length or DEFAULT_MAX_OUTPUT
        bound = call.output_bound(cap)
        upstream = await self._build(call, first, native, extra_headers, bound, cap)
        held_output = max(bound, upstream.max_output or 0)  # an adapter may add room for thinking, up to the cap
        hold = self._hold_amount(call, model, body_size, held_output)
        hold += tool_hold(call.server_tools, model.pricing)  # server tools: price x max_uses each
        request_id = request[REQUEST_ID]
        ticket = await admit(self.gw.rates, key, request)
        try:
            await self._hold(key, model, request_id, hold, call.stream, first)
        except BaseException:
            if ticket is not None:
                ticket.release(0)
            raise
        outcome = Outcome()
        route = first
        metrics = self.gw.metrics
        metrics.holds.inc()
        try:
            self.gw.inflight.watch()  # from here on, a client that leaves or the drain's deadline cancels this task
            attempts = admitted(routes, health)[:MAX_ATTEMPTS]
            for number, route in enumerate(attempts):
                if route is not first:  # never forward more output than was held for
                    upstream = await self._build(call, route, native, extra_headers, bound, held_output)
                adapter = CHAT_ADAPTERS[route.channel.protocol]
                try:
                    if call.stream:
                        response = await self._stream(request, call, model, route, adapter, upstream, responder, outcome)
                    else:
                        response = await self._complete(call, model, route, adapter, upstream, responder, outcome)
                except GatewayError as err:
                    if self.gw.inflight.cut_off:  # the drain's deadline: not the channel's fault, no time for another
                        health.release(route.channel.id)
                        if err.code == "shutting_down":
                            outcome.status, outcome.http_status = "interrupted", err.status
                        raise
                    metrics.upstream_errors.labels(route.channel.name, err.code or type(err).__name__).inc()
                    last = number == len(attempts) - 1 or time.monotonic() - started > FAILOVER_DEADLINE
                    if not judge(health, route, err) or last:
                        raise
                    outcome.http_status = None
                    continue  # nothing reached the client yet: the next channel may answer
                if outcome.status == "ok":
                    health.succeeded(route.channel.id)
                elif outcome.status in ("truncated", "upstream_error"):  # broke after output began: no retry, but a failure
                    health.failed(route.channel.id, outcome.error or outcome.status)
                else:
                    health.release(route.channel.id)  # ended without a verdict on the channel (e.g. the client left)
                return response
            raise ServiceUnavailable("no channel could take the request", code="no_channel")  # pragma: no cover
        except GatewayError as err:
            outcome.error = err.message
            outcome.http_status = outcome.http_status or err.status
            raise
        except asyncio.CancelledError:
            health.release(route.channel.id)
            if outcome.started:
                raise  # cancelled while a stream was being finished: its outcome stands
            if not self.gw.inflight.cut_off:  # the client left before anything was sent: nothing to charge
                outcome.status, outcome.http_status = "client_closed", 499
                raise
            # The drain's deadline came before the first byte: answer 503, charge nothing.
            uncancel()
            err = shutting_down()
            outcome.status, outcome.error, outcome.http_status = "interrupted", err.message, err.status
            raise err from None
        finally:
            metrics.holds.dec()
            if ticket is not None:
                ticket.release(outcome.usage.prompt_tokens + outcome.usage.completion_tokens)
            settlement = Settlement(
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
                prices=self.gw.directory.prices_json.get(model.id),
                channel_id=route.channel.id,
                upstream_model=route.upstream_id,
                budgets=key.budgets,
            )
            self.gw.ledger.settle(settlement)
            metrics.settled(responder.endpoint, model.id, settlement)

    async def _hold(self, key: KeyInfo, model: Model, request_id: str, amount: int, stream: bool, first: Route) -> None:
        await self.gw.ledger.hold(
            Hold(
                request_id=request_id,
                user_id=key.user_id,
                key_id=key.id,
                amount=amount,
                model=model.id,
                stream=stream,
                channel_id=first.channel.id,
                upstream_model=first.upstream_id,
                budgets=key.budgets,
            )
        )

    async def _build(
        self,
        call: ChatCall,
        route: Route,
        native: Callable[[Route, int], UpstreamRequest | None] | None,
        extra_headers: dict[str, str] | None,
        max_output: int,
        output_ceiling: int,
    ) -> UpstreamRequest:
        """The upstream request, forwarding exactly ``max_output`` output tokens per choice (an adapter
        may raise it for thinking, never above ``output_ceiling``)."""
        if native is not None:
            built = native(route, max_output)
            if built is not None:
                return built
        adapter = CHAT_ADAPTERS[route.channel.protocol]
        urls = adapter.remote_images(call.payload)
        if len(urls) > MAX_REMOTE_IMAGES:
            raise InvalidRequest(f"at most {MAX_REMOTE_IMAGES} image URLs per request", param="messages")
        return adapter.build_request(
            call.payload,
            route.upstream_id,
            route.channel,
            stream=call.stream,
            max_output=max_output,
            output_ceiling=output_ceiling,
            extra_headers=extra_headers,
            images=await self.gw.fetcher.fetch_all(urls) if urls else None,
        )

    def _hold_amount(self, call: ChatCall, model: Model, body_size: int, output: int) -> int:
        """The most the request can cost: its prompt's upper bound (the context window where part of
        the input has no tighter one) and ``output`` tokens for each of its ``n`` choices."""
        prompt = None if call.opaque_input else prompt_upper_bound(call.payload, body_size)
        if prompt is None:
            if not model.context_length:
                raise InvalidRequest(
                    f"this request has input whose size in tokens cannot be known in advance (a file, audio or a document), "
                    f"and '{model.id}' has no context length in the catalog to bound it; ask the operator to set one",
                    code="unbounded_input",
                )
            prompt = model.context_length
        elif model.context_length:
            prompt = min(prompt, model.context_length)
        return max_cost(prompt, output * call.n, model.pricing)

    async def _post(self, upstream: UpstreamRequest, channel: Channel) -> aiohttp.ClientResponse:
        """Send; the response once its headers arrive within the channel's first-byte timeout."""
        timeouts = channel.timeouts
        with mapped_failures():
            async with asyncio.timeout(timeouts.first_byte):
                return await self.gw.http.post(upstream.url, data=upstream.body, headers=upstream.headers, timeout=timeouts.client)

    async def _error(self, resp: aiohttp.ClientResponse, adapter: ChatAdapter, channel: Channel) -> GatewayError:
        raw = await resp.read()
        return adapter.error(resp.status, raw, channel, resp.headers.get("Retry-After"))

    # -- non-streaming -------------------------------------------------------------------------

    async def _complete(
        self, call: ChatCall, model: Model, route: Route, adapter: ChatAdapter, upstream: UpstreamRequest,
        responder: Responder, outcome: Outcome,
    ) -> web.Response:  # fmt: skip
        resp = await self._post(upstream, route.channel)
        try:
            outcome.ttfb = time.monotonic()
            outcome.http_status = resp.status
            if resp.status != 200:
                raise await self._error(resp, adapter, route.channel)
            with mapped_failures(answering=True):
                async with asyncio.timeout(route.channel.timeouts.idle):
                    raw = await resp.read()
        finally:
            resp.release()
        try:
            completion = adapter.parse_response(raw)
        except GatewayError as err:  # a 200 that carries the upstream's error
            raise redacted(err, route.channel) from None
        usage = completion.usage
        if usage is None:
            usage = Usage(prompt_estimate(call.payload), estimate_tokens(message_text(completion.body)), estimated=True)
        cost = usage_cost(usage, model.pricing)
        outcome.status, outcome.usage, outcome.cost = "ok", usage, cost
        outcome.finish_reason = finish_reason_of(completion.body)
        return responder.completion(completion.body, usage, format_usd(cost))

    # -- streaming -----------------------------------------------------------------------------

    async def _stream(
        self, request: web.Request, call: ChatCall, model: Model, route: Route, adapter: ChatAdapter,
        upstream: UpstreamRequest, responder: Responder, outcome: Outcome,
    ) -> web.StreamResponse:  # fmt: skip
        upstream_resp = await self._post(upstream, route.channel)

        def cost_text(usage: Usage) -> str:
            return format_usd(usage_cost(usage, model.pricing))

        pipe = responder.pipe(adapter, cost_text, route.channel)
        client: web.StreamResponse | None = None

        async def send(data: bytes) -> None:
            nonlocal client
            if not data:
                return
            if client is None:
                client = web.StreamResponse(headers=responder.sse_headers)
                outcome.started = True
                await client.prepare(request)
                outcome.ttfb = time.monotonic()
            await client.write(data)

        failure: GatewayError | None = None
        client_gone = False
        cut = False  # the drain's deadline ended this stream
        try:
            outcome.http_status = upstream_resp.status
            if upstream_resp.status != 200:
                raise await self._error(upstream_resp, adapter, route.channel)
            decoder = SSEDecoder()
            try:
                async for chunk in _chunks(upstream_resp, route.channel.timeouts.idle):
                    for event in decoder.feed(chunk):
                        out = pipe.feed(event)
                        if pipe.error is not None:
                            break
                        await send(out)
                    if pipe.error is not None or (pipe.finished and pipe.usage is not None):
                        break
                else:
                    for event in decoder.close():
                        out = pipe.feed(event)
                        if pipe.error is None:
                            await send(out)
                    if pipe.error is None:
                        await send(pipe.close())
            except ConnectionResetError:
                client_gone = True
            except NETWORK_FAILURES as exc:
                failure = upstream_failure(exc, answering=True)
            except MalformedChunk as exc:
                failure = exc
            except asyncio.CancelledError:  # the client left, or the drain's deadline came (relay/inflight.py)
                uncancel()
                if self.gw.inflight.cut_off:
                    cut, failure = True, shutting_down()
                else:
                    client_gone = True
            if failure is None and not client_gone and pipe.error is None and not pipe.finished:
                failure = UpstreamError("the upstream stream ended before the answer was complete", code="upstream_truncated")
            if client is None and not client_gone:
                # Nothing reached the client yet: answer with a plain HTTP error, charge nothing.
                if pipe.error is not None:
                    message = route.channel.redact(str(pipe.error.get("message", "")))
                    if pipe.error.get("code") == "content_filter":  # the upstream refused the prompt itself
                        raise InvalidRequest(message, code="content_filter")
                    raise UpstreamError(f"The upstream provider failed: {message}", code="upstream_error")
                if failure is not None:
                    raise failure
        finally:
            upstream_resp.close()  # stops the upstream generating if we left early

        usage = pipe.usage or Usage(prompt_estimate(call.payload), pipe.delivered_tokens(), estimated=True)
        outcome.usage, outcome.cost = usage, usage_cost(usage, model.pricing)
        upstream_failed = failure is not None or pipe.error is not None
        if upstream_failed and pipe.usage is None and usage.completion_tokens == 0:
            outcome.cost = 0  # the upstream failed before generating anything: nothing to charge
        outcome.finish_reason = pipe.finish_reason
        if client_gone:
            outcome.status = "client_closed"
            if client is None:
                outcome.cost = 0  # nothing reached the client
            return client if client is not None else web.Response(status=499)
        assert client is not None
        try:
            async with asyncio.timeout(CUT_TAIL_TIMEOUT if cut else None):
                if pipe.error is not None:
                    outcome.status, outcome.error = "upstream_error", str(pipe.error.get("message", ""))[:500]
                    await client.write(pipe.error_tail(pipe.error))
                elif failure is not None:
                    outcome.status, outcome.error = "interrupted" if cut else "truncated", failure.message
                    await client.write(pipe.error_tail(failure))
                else:
                    outcome.status = "ok"
                    await client.write(pipe.ending(usage, format_usd(outcome.cost)))
                await client.write_eof()
        except ConnectionResetError:
            outcome.status = "client_closed" if outcome.status == "ok" else outcome.status
        except asyncio.TimeoutError:  # cut at the drain's deadline and the client reads no more: hang up
            if request.transport is not None:
                request.transport.abort()
        return client


async def _chunks(resp: aiohttp.ClientResponse, idle: float) -> AsyncIterator[bytes]:
    """The body as it arrives; ``TimeoutError`` when the upstream stays silent for ``idle`` seconds.

    One watchdog timer per body, not one per chunk: the loop only notes when it starts waiting on the
    upstream (not while the client is being written to), and the timer, when it fires, either
    re-arms for that deadline or fails the pending read.
    """
    loop = asyncio.get_running_loop()
    waiting_since: float | None = loop.time()

    def watchdog() -> None:
        nonlocal timer
        now = loop.time()
        if waiting_since is not None and now >= waiting_since + idle:
            resp.content.set_exception(asyncio.TimeoutError())
        else:
            timer = loop.call_at((waiting_since if waiting_since is not None else now) + idle, watchdog)

    timer = loop.call_at(waiting_since + idle, watchdog)
    try:
        async for chunk in resp.content.iter_any():
            waiting_since = None
            yield chunk
            waiting_since = loop.time()
    finally:
        timer.cancel()
