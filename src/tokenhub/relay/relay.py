"""The hot path, for every chat endpoint and every upstream protocol.

    resolve the model and a route (memory) -> hold the most the request can cost (the one storage
    round trip, group-committed) -> the adapter builds the upstream request -> call it -> the
    responder answers in the client's protocol -> settle in ``finally`` (queued, group-committed)

The hold is *early* where the ledger expects it admitted (``LedgerWriter.covers``) and its commit is
worth overlapping (``_early``): the upstream call starts while it commits, and the first byte to the
client waits for the commit (``Client.open``, and ``bill.confirmed()`` before a whole answer leaves).
A hold refused after all ends the call with the refusal, charging nothing and counting nothing
against the channel.

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
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import web

from tokenhub.billing.bill import Bill
from tokenhub.billing.cost import max_cost, tool_hold, usage_cost
from tokenhub.billing.ledger import Hold, Settlement
from tokenhub.catalog.model import Model
from tokenhub.directory import KeyInfo
from tokenhub.errors import GatewayError, InvalidRequest, ServiceUnavailable, UpstreamError
from tokenhub.money import format_usd
from tokenhub.providers.base import ChatAdapter, MalformedChunk, UpstreamRequest, finish_reason_of, message_text, redacted
from tokenhub.providers.client import ClientRequest, Pipe, Responder
from tokenhub.providers.registry import RESPONSES, chat_adapter_for, speaks_responses
from tokenhub.providers.upstream_http import NETWORK_FAILURES, upstream_failure
from tokenhub.relay.admission import admit
from tokenhub.relay.call import ChatCall
from tokenhub.relay.event_stream import EventStream
from tokenhub.relay.health import ChannelHealth
from tokenhub.relay.inflight import shutting_down, uncancel
from tokenhub.relay.meter import StreamMeter, completion_charge
from tokenhub.relay.routing import admitted, candidates, judge, prefer
from tokenhub.relay.upstream_clock import UpstreamClock
from tokenhub.request_keys import REQUEST_ID
from tokenhub.sse import Event, SSEDecoder
from tokenhub.tokens import prompt_estimate, prompt_upper_bound
from tokenhub.upstream import Channel, Route

if TYPE_CHECKING:  # the gateway wires the relay in: a type only, never an import cycle
    from tokenhub.gateway import Gateway

DEFAULT_MAX_OUTPUT: Final = 16_384
MAX_REMOTE_IMAGES: Final = 16
MAX_ATTEMPTS: Final = 3  # channels tried for one request, at most
FAILOVER_DEADLINE: Final = 120.0  # seconds after which a failure is answered instead of tried elsewhere
CUT_TAIL_TIMEOUT: Final = 1.0  # seconds a stream cut at the drain's deadline may take to send its error event


@dataclass
class Job:
    """One chat request on its way: what every attempt (one channel each) shares."""

    request: web.Request
    call: ChatCall
    model: Model
    responder: Responder
    client_request: ClientRequest | None  # the client's own request, for upstreams that speak its protocol
    extra_headers: dict[str, str] | None
    bound: int  # output tokens per choice forwarded and held for
    held_output: int  # the most any attempt may forward (an adapter may add room for thinking)
    streaming: bool = False  # the response's headers went out (a stream began)

    def prompt_estimate(self) -> int:
        return prompt_estimate(self.call.payload)


class Relay:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def resolve(self, model_name: str, key: KeyInfo) -> Model:
        """The catalog model a client means, checked against its key."""
        model = self.gw.directory.catalog.resolve(model_name)
        if model.kind != "chat":
            endpoint = {"image": "images/generations", "video": "videos/generations"}.get(model.kind, model.kind + "s")
            raise InvalidRequest(f"'{model.id}' is a {model.kind} model; use /api/v1/{endpoint}", param="model")
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
        client_request: ClientRequest | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """Serve one chat request: hold, fail over between channels until the first byte is sent, settle.

        ``client_request`` gives the upstream request itself on routes whose upstream speaks the
        client's protocol (the /messages pass-through to Anthropic, forwarding the held output bound).
        """
        plan = self._plan(call, key, model or self.resolve(call.model_name, key))
        first = plan[0]
        cap = _output_cap(first.model)
        job = Job(request, call, first.model, responder, client_request, extra_headers, call.output_bound(cap), cap)
        upstream = await self._build(job, first.route, job.bound, cap)
        job.held_output = max(job.bound, upstream.max_output or 0)  # thinking room, up to the cap
        amount = max(  # the dearest model the plan may end on
            self._hold_amount(call, m, body_size, job.held_output) + tool_hold(call.server_tools, m.pricing)
            for m in {a.model.id: a.model for a in plan}.values()
        )
        hold = Hold(request[REQUEST_ID], key.user_id, key.id, amount, first.model.id, stream=call.stream, endpoint=responder.endpoint,
                    channel_id=first.route.channel.id, upstream_model=first.route.upstream_id, budgets=key.budgets)  # fmt: skip
        ticket = await admit(self.gw.rates, key, request)
        metrics = self.gw.metrics

        def settled(settlement: Settlement) -> None:
            metrics.holds.dec()
            metrics.settled(responder.endpoint, job.model.id, settlement)

        bill = Bill(self.gw.ledger, hold, prices=self.gw.directory.prices_json.get(job.model.id), on_settled=settled,
                    early=self._early(), on_held=metrics.holds.inc)  # fmt: skip
        try:
            async with bill:
                return await self._serve(job, plan, upstream, bill)
        finally:
            if ticket is not None:
                ticket.release(bill.usage.prompt_tokens + bill.usage.completion_tokens)

    def _early(self) -> bool:
        """Whether this request's hold may commit while the upstream call goes out (where the ledger
        expects it admitted). On PostgreSQL always: the commit is round trips. On SQLite the commit is
        this thread's own work: only for a request alone in the process (it then commits while the
        upstream answers); under load, holds arriving together wait to share one commit (going early
        split the groups: +5 % CPU per request at c=16)."""
        return self.gw.ledger.remote or len(self.gw.inflight) <= 1

    async def _serve(self, job: Job, plan: list[Attempt], upstream: UpstreamRequest, bill: Bill) -> web.StreamResponse:
        """Try the admitted routes in turn until one answers; record on ``bill`` how it ended."""
        health = self.gw.health
        first, route = plan[0], plan[0].route
        try:
            self.gw.inflight.watch()  # from here on, a client that leaves or the drain's deadline cancels this task
            attempts = _admitted(plan, health)
            for number, attempt in enumerate(attempts):
                route = attempt.route
                bill.channel_id, bill.upstream_model = route.channel.id, route.upstream_id
                if attempt is not first:  # never forward more output than was held for
                    if attempt.model is not job.model:
                        self._switch(job, bill, attempt.model)
                    upstream = await self._build(job, route, job.bound, job.held_output)
                try:
                    response = await self._attempt(job, route, upstream, bill)
                    await bill.confirmed()  # an answer leaves only once its hold is committed
                except GatewayError as err:
                    failed = err  # what follows awaits: outside the handler (tests/test_compiled.py says why)
                else:
                    self._verdict(route, bill)
                    return response
                if (refused := await bill.refusal()) is not None:  # not the channel's fault, nor worth another
                    health.release(route.channel.id)
                    raise refused from None
                if not self._retry(failed, route, bill, last=number == len(attempts) - 1):
                    raise failed
                # nothing reached the client yet: the next channel may answer
            raise ServiceUnavailable("no channel could take the request", code="no_channel")  # pragma: no cover
        except GatewayError as err:
            failure = err
        except asyncio.CancelledError:
            health.release(route.channel.id)
            if job.streaming:
                raise  # cancelled while a stream was being finished: its outcome stands
            if (refused := bill.refused) is not None:  # the early hold was refused while the upstream answered
                uncancel()
                raise refused from None
            if not self.gw.inflight.cut_off:  # the client left before anything was sent: nothing to charge
                bill.status, bill.http_status = "client_closed", 499
                raise
            # The drain's deadline came before the first byte: answer 503, charge nothing.
            uncancel()
            down = shutting_down()
            bill.status, bill.error, bill.http_status = "interrupted", down.message, down.status
            raise down from None
        if (refused := await bill.refusal()) is not None:
            raise refused from None  # the hold was refused: nothing to record, whatever else went wrong
        bill.error = failure.message
        bill.http_status = bill.http_status or failure.status
        raise failure

    async def _attempt(self, job: Job, route: Route, upstream: UpstreamRequest, bill: Bill) -> web.StreamResponse:
        adapter = _adapter(job, route)
        if job.call.stream:
            return await self._stream(job, route, adapter, upstream, bill)
        return await self._complete(job, route, adapter, upstream, bill)

    def _plan(self, call: ChatCall, key: KeyInfo, model: Model) -> list[Attempt]:
        """Every (model, route) the request may try, in order: the model's routes as the client's ``provider``
        preferences order them, then each fallback model's (OpenRouter's ``models``; each checked against the key)."""
        models = [model, *(self.resolve(name, key) for name in call.models[1:])]
        plan: list[Attempt] = []
        refusal: GatewayError | None = None
        for candidate in {m.id: m for m in models}.values():
            try:
                routes = candidates(self.gw.directory.routes(candidate.id), candidate)
            except GatewayError as err:  # no channel for this one: the next model may have one
                refusal = refusal or err
                continue
            if candidate.responses_only:  # served upstream only through /responses
                routes = [r for r in routes if speaks_responses(r.channel)]
                if not routes:
                    refusal = refusal or ServiceUnavailable(
                        f"'{candidate.id}' is served only through OpenAI's Responses API, and none of its channels is of a "
                        "vendor that serves it", code="no_channel")  # fmt: skip
                    continue
            plan.extend(Attempt(candidate, r) for r in prefer(routes, call.extensions.provider, self.gw.health))
        if not plan:
            if refusal is not None and call.extensions.provider is None:
                raise refusal
            raise ServiceUnavailable(
                f"no channel serving '{model.id}' matches the request's provider preferences", code="no_channel"
            )
        return plan

    def _switch(self, job: Job, bill: Bill, model: Model) -> None:
        """A fallback model answers from here on: its prices, its output bound (never above what was held), its id."""
        job.model = model
        job.bound = min(job.call.output_bound(_output_cap(model)), job.held_output)
        job.responder.client_model = model.id
        bill.model, bill.prices = model.id, self.gw.directory.prices_json.get(model.id)

    def _retry(self, err: GatewayError, route: Route, bill: Bill, *, last: bool) -> bool:
        """Whether a failed attempt may go to the next channel (the failure counted against this one)."""
        health = self.gw.health
        if self.gw.inflight.cut_off:  # the drain's deadline: not the channel's fault, no time for another
            health.release(route.channel.id)
            if err.code == "shutting_down":
                bill.status, bill.http_status = "interrupted", err.status
            return False
        self.gw.metrics.upstream_errors.labels(route.channel.name, err.code or type(err).__name__).inc()
        if not judge(health, route, err) or last or time.monotonic() - bill.started > FAILOVER_DEADLINE:
            return False
        bill.http_status = None
        return True

    def _verdict(self, route: Route, bill: Bill) -> None:
        health = self.gw.health
        if bill.status == "ok":
            health.succeeded(route.channel.id)
            if bill.ttfb is not None:  # throughput only from streams: a whole answer's output arrives with its headers
                tokens = bill.usage.completion_tokens if bill.hold.stream else 0
                health.observe(route.channel.id, bill.ttfb - bill.started, tokens, time.monotonic() - bill.started)
        elif bill.status in ("truncated", "upstream_error"):  # broke after output began: no retry, but a failure
            health.failed(route.channel.id, bill.error or bill.status)
        else:
            health.release(route.channel.id)  # ended without a verdict on the channel (e.g. the client left)

    async def _build(self, job: Job, route: Route, max_output: int, output_ceiling: int) -> UpstreamRequest:
        """The upstream request, forwarding exactly ``max_output`` output tokens per choice (an adapter
        may raise it for thinking, never above ``output_ceiling``)."""
        adapter = _adapter(job, route)
        if job.client_request is not None:
            if job.responder.relays(adapter):
                return job.client_request.native(route, max_output)  # pass-through: the client's own request
            job.client_request.translated()  # refuses what only the client's own protocol can carry
        urls = adapter.remote_images(job.call.payload)
        if len(urls) > MAX_REMOTE_IMAGES:
            raise InvalidRequest(f"at most {MAX_REMOTE_IMAGES} image URLs per request", param="messages")
        return adapter.build_request(
            job.call.payload,
            route.upstream_id,
            route.channel,
            stream=job.call.stream,
            max_output=max_output,
            output_ceiling=output_ceiling,
            extra_headers=job.extra_headers,
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

    async def _post(self, upstream: UpstreamRequest, channel: Channel, bill: Bill) -> tuple[aiohttp.ClientResponse, UpstreamClock]:
        """Send; the response once its headers arrive within the channel's first-byte timeout, and the clock
        that times its body (the caller stops it). Meanwhile the bill is ``calling``: an early hold refused
        then cancels the wait (``_serve`` answers the refusal)."""
        timeouts = channel.timeouts
        bill.calling = True
        clock = UpstreamClock(timeouts.first_byte, timeouts.idle)
        try:
            sending = self.gw.http.post(upstream.url, data=upstream.body, headers=upstream.headers, timeout=timeouts.client)
            return await clock.headers(sending), clock
        except NETWORK_FAILURES as exc:  # as upstream_http.mapped_failures maps them: that context manager cost 1.5 % a request
            raise upstream_failure(exc) from None
        finally:
            bill.calling = False

    async def _error(self, resp: aiohttp.ClientResponse, adapter: ChatAdapter, channel: Channel) -> GatewayError:
        raw = await resp.read()
        return adapter.error(resp.status, raw, channel, resp.headers.get("Retry-After"))

    # -- non-streaming -------------------------------------------------------------------------

    async def _complete(self, job: Job, route: Route, adapter: ChatAdapter, upstream: UpstreamRequest, bill: Bill) -> web.Response:
        resp, clock = await self._post(upstream, route.channel, bill)
        try:
            bill.ttfb = time.monotonic()
            bill.http_status = resp.status
            if resp.status != 200:
                raise await self._error(resp, adapter, route.channel)
            try:
                raw = await clock.body(resp)
            except NETWORK_FAILURES as exc:
                raise upstream_failure(exc, answering=True) from None
        finally:
            clock.stop()
            resp.release()
        try:
            completion = adapter.parse_response(raw)
        except GatewayError as err:  # a 200 that carries the upstream's error
            raise redacted(err, route.channel) from None
        usage, cost = completion_charge(completion.usage, job.model.pricing, job.prompt_estimate, lambda: message_text(completion.body))
        bill.status, bill.usage, bill.cost = "ok", usage, cost
        bill.finish_reason = finish_reason_of(completion.body)
        return job.responder.completion(completion.body, usage, format_usd(cost))

    # -- streaming -----------------------------------------------------------------------------

    async def _stream(self, job: Job, route: Route, adapter: ChatAdapter, upstream: UpstreamRequest, bill: Bill) -> web.StreamResponse:
        upstream_resp, clock = await self._post(upstream, route.channel, bill)
        pricing = job.model.pricing
        meter = StreamMeter()
        pipe = job.responder.pipe(adapter, meter, lambda usage: format_usd(usage_cost(usage, pricing)), route.channel)
        client = Client(job, bill)
        try:
            bill.http_status = upstream_resp.status
            if upstream_resp.status != 200:
                raise await self._error(upstream_resp, adapter, route.channel)
            ended = await self._relay_events(upstream_resp, clock, pipe, meter, client)
            if client.response is None and not ended.client_gone:
                _refuse_before_first_byte(meter, ended.failure, route.channel)  # a plain HTTP error, nothing charged
        finally:
            clock.stop()
            upstream_resp.close()  # stops the upstream generating if we left early
        failed = ended.failure is not None or meter.error is not None
        bill.usage, bill.cost = meter.charge(pricing, job.prompt_estimate, upstream_failed=failed)
        bill.finish_reason = meter.finish_reason
        if ended.client_gone:
            bill.status = "client_closed"
            if client.response is None:
                bill.cost = 0  # nothing reached the client
            return client.response if client.response is not None else web.Response(status=499)
        # (no response yet: a complete answer the pipe holds until its ending, a Gemini client's function calls)
        response = client.response if client.response is not None else await client.open()
        await self._end_stream(job.request, response, pipe, meter, ended, bill)
        return response

    async def _relay_events(
        self, upstream_resp: aiohttp.ClientResponse, clock: UpstreamClock, pipe: Pipe, meter: StreamMeter, client: Client
    ) -> Ending:
        """Upstream events through the pipe to the client until the upstream ends, fails or the client leaves."""
        ended = Ending()
        decoder = SSEDecoder()
        try:
            # One write per upstream read: the events that arrived together leave together. The last
            # read's bytes are the stream's tail, written with its ending in one write (a short answer
            # that arrives whole leaves in one, with the response's headers).
            async for chunk in clock.chunks(upstream_resp):
                out, malformed = _feed(pipe, meter, decoder.feed(chunk))
                if malformed is not None or meter.done:
                    ended.tail = out
                    break
                await client.send(out)
            else:
                out, malformed = _feed(pipe, meter, decoder.close())
                ended.tail = out + pipe.close() if meter.error is None and malformed is None else out
            if ended.tail and client.response is None:
                await client.open()  # as the first bytes would: once the hold is committed, the client still there
            if malformed is not None:
                raise malformed
        except ConnectionResetError:
            ended.client_gone = True
        except NETWORK_FAILURES as exc:
            ended.failure = upstream_failure(exc, answering=True)
        except MalformedChunk as exc:
            ended.failure = exc
        except asyncio.CancelledError:  # the client left, or the drain's deadline came (relay/inflight.py)
            uncancel()
            if self.gw.inflight.cut_off:
                ended.cut, ended.failure = True, shutting_down()
            else:
                ended.client_gone = True
        if ended.failure is None and not ended.client_gone and meter.error is None and not meter.finished:
            ended.failure = UpstreamError("the upstream stream ended before the answer was complete", code="upstream_truncated")
        return ended

    async def _end_stream(
        self, request: web.Request, client: web.StreamResponse, pipe: Pipe, meter: StreamMeter, ended: Ending, bill: Bill
    ) -> None:
        """The stream's last bytes: the ending after a complete answer, else an error event."""
        if meter.error is not None:
            bill.status, bill.error = "upstream_error", str(meter.error.get("message", ""))[:500]
            ending = pipe.error_tail(meter.error)
        elif ended.failure is not None:
            bill.status, bill.error = "interrupted" if ended.cut else "truncated", ended.failure.message
            ending = pipe.error_tail(ended.failure)
        else:
            bill.status = "ok"
            ending = pipe.ending(bill.usage, format_usd(bill.cost))
        try:
            if ended.cut:  # the drain's deadline came: the client has a moment to take the error event
                async with asyncio.timeout(CUT_TAIL_TIMEOUT):
                    await client.write_eof(ended.tail + ending)
            else:
                await client.write_eof(ended.tail + ending)
        except ConnectionResetError:
            bill.status = "client_closed" if bill.status == "ok" else bill.status
        except asyncio.TimeoutError:  # cut at the drain's deadline and the client reads no more: hang up
            if request.transport is not None:
                request.transport.abort()


@dataclass(frozen=True, eq=False)
class Attempt:
    """One model on one route: what an attempt tries."""

    model: Model
    route: Route


def _adapter(job: Job, route: Route) -> ChatAdapter:
    """The route's adapter: its Responses endpoint for a Responses-only model or a Responses client that
    can pass through (where the channel serves it), else its protocol's."""
    wants = job.model.responses_only or (job.client_request is not None and job.responder.relays(RESPONSES))
    return chat_adapter_for(route.channel, responses=wants)


def _output_cap(model: Model) -> int:
    return model.max_output_tokens or model.context_length or DEFAULT_MAX_OUTPUT


def _admitted(plan: list[Attempt], health: ChannelHealth) -> list[Attempt]:
    """Each model's admitted routes (at least one per model), at most ``MAX_ATTEMPTS`` per model."""
    out: list[Attempt] = []
    for _, group in groupby(plan, key=lambda a: a.model.id):
        attempts = list(group)
        by_route = {id(a.route): a for a in attempts}
        out.extend(by_route[id(r)] for r in admitted([a.route for a in attempts], health)[:MAX_ATTEMPTS])
    return out


@dataclass
class Ending:
    """How the upstream part of a stream ended."""

    failure: GatewayError | None = None
    tail: bytes = b""  # the last read's bytes for the client, not yet sent: they leave with the ending
    client_gone: bool = False
    cut: bool = False  # the drain's deadline ended it


class Client:
    """The client's side of a stream: the response's headers go out with the first bytes worth sending."""

    def __init__(self, job: Job, bill: Bill) -> None:
        self._job = job
        self._bill = bill
        self.response: web.StreamResponse | None = None

    async def open(self) -> web.StreamResponse:
        await self._bill.confirmed()  # nothing reaches the client before its hold is committed
        self.response = response = EventStream(headers=self._job.responder.sse_headers)
        self._job.streaming = True
        await response.prepare(self._job.request)
        self._bill.ttfb = time.monotonic()
        return response

    async def send(self, data: bytes) -> None:
        if not data:
            return
        response = self.response
        if response is None:
            response = await self.open()
        await response.write(data)


def _refuse_before_first_byte(meter: StreamMeter, failure: GatewayError | None, channel: Channel) -> None:
    """Nothing reached the client yet: an upstream error becomes a plain HTTP error (and may fail over)."""
    if meter.error is not None:
        message = channel.redact(str(meter.error.get("message", "")))
        if meter.error.get("code") == "content_filter":  # the upstream refused the prompt itself
            raise InvalidRequest(message, code="content_filter")
        raise UpstreamError(f"The upstream provider failed: {message}", code="upstream_error")
    if failure is not None:
        raise failure


def _feed(pipe: Pipe, meter: StreamMeter, events: list[Event]) -> tuple[bytes, MalformedChunk | None]:
    """What the pipe makes of these events for the client, up to (not including) an error event or a
    malformed one (returned, to raise once what came before it is sent)."""
    parts = []
    try:
        for event in events:
            out = pipe.feed(event)
            if meter.error is not None:
                break
            if out:
                parts.append(out)
    except MalformedChunk as exc:
        return b"".join(parts), exc
    return b"".join(parts), None
