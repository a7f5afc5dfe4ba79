"""POST /api/v1/embeddings: hold the inputs' upper bound, call the upstream in batches, charge its count.

OpenAI's request (``input``: a string, a list of strings, a token array or a list of them;
``dimensions``; ``encoding_format`` float | base64) for every catalog embedding model, whatever the
upstream protocol (providers/registry.py ``EMBEDDING_ADAPTERS``). The inputs go upstream in batches
of the model's ``max_inputs`` (Qwen takes 10, Gemini 100), a few at a time, and come back in order.

Billing: the hold covers every input at one token per UTF-8 byte (a token is at least one byte), or
its token count; the charge is the upstream's ``prompt_tokens``, or the gateway's estimate (flagged
``estimated``) where the upstream reports none (Gemini). A failure before every batch answered
charges nothing; a channel that fails is failed over like a chat channel.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from tokenhub.billing.bill import Bill
from tokenhub.billing.cost import usage_cost
from tokenhub.billing.ledger import Hold, Settlement
from tokenhub.catalog.model import Model
from tokenhub.directory import KeyInfo
from tokenhub.errors import GatewayError, InvalidRequest
from tokenhub.money import usd_number
from tokenhub.providers.base import redacted
from tokenhub.providers.embeddings import Embedded, EmbeddingAdapter, Input
from tokenhub.providers.registry import EMBEDDING_ADAPTERS
from tokenhub.providers.upstream_http import fetch
from tokenhub.relay.admission import limited
from tokenhub.relay.routing import admitted, candidates, judge
from tokenhub.request_keys import REQUEST_ID
from tokenhub.tokens import Usage, estimate_tokens
from tokenhub.upstream import Route

if TYPE_CHECKING:  # the gateway wires the relay in: a type only
    from tokenhub.gateway import Gateway

MAX_INPUTS = 2048  # OpenAI's own limit per request
MAX_ATTEMPTS = 3
PARALLEL_BATCHES = 4


@dataclass(frozen=True)
class EmbeddingJob:
    inputs: list[Input]
    dimensions: int | None
    encoding_format: str

    def token_bound(self) -> int:
        return sum(len(i.encode()) if isinstance(i, str) else len(i) for i in self.inputs)

    def token_estimate(self) -> int:
        return sum(estimate_tokens(i) if isinstance(i, str) else len(i) for i in self.inputs)


def parse_embedding_job(payload: dict[str, Any], model: Model) -> EmbeddingJob:
    spec = model.embedding or {}
    inputs = _inputs(payload.get("input"), bool(spec.get("token_arrays")), model)
    dimensions = payload.get("dimensions")
    if dimensions is not None:
        _check_dimensions(dimensions, spec, model)
    encoding = payload.get("encoding_format", "float")
    if encoding is None:
        encoding = "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    return EmbeddingJob(inputs, dimensions, encoding)


def _inputs(value: Any, token_arrays: bool, model: Model) -> list[Input]:
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, list) and value and all(_is_token(t) for t in value):
        value = [value]  # one token array
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'input' is required: a string, a list of strings, or token arrays", param="input")
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"'input' may hold at most {MAX_INPUTS} items", param="input")
    for i, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise InvalidRequest(f"input[{i}] is an empty string; every input needs text", param="input")
        elif isinstance(item, list) and item and all(_is_token(t) for t in item):
            if not token_arrays:
                raise InvalidRequest(f"'{model.id}' takes text, not token arrays", param="input")
        else:
            raise InvalidRequest(f"input[{i}] must be a non-empty string or a non-empty array of token ids", param="input")
    return value


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_dimensions(value: Any, spec: dict[str, Any], model: Model) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("'dimensions' must be a positive integer", param="dimensions")
    choices, bounds = spec.get("dimension_choices"), spec.get("dimension_range")
    if choices and value not in choices:
        raise InvalidRequest(f"'dimensions' for {model.id} is one of {', '.join(map(str, choices))}", param="dimensions")
    if bounds and not bounds[0] <= value <= bounds[1]:
        raise InvalidRequest(f"'dimensions' for {model.id} is from {bounds[0]} to {bounds[1]}", param="dimensions")
    if not choices and not bounds:
        raise InvalidRequest(f"{model.id} has a fixed vector size: leave 'dimensions' out", param="dimensions")


@dataclass(frozen=True)
class Embeddings:
    """What an embeddings request answered: its vectors in input order, the usage billed and its cost."""

    model: Model
    vectors: list[list[float]]
    usage: Usage
    cost: int


def embedding_model(gw: Gateway, key: KeyInfo, name: Any) -> Model:
    """The embedding model a request names, allowed for the key."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest("'model' is required: an embedding model id such as openai/text-embedding-3-small", param="model")
    model = gw.directory.catalog.resolve(name.strip())
    if model.kind != "embedding":
        raise InvalidRequest(f"'{model.id}' is a {model.kind} model, not an embedding model", param="model")
    key.check_model(model)
    return model


async def embeddings_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: Any) -> web.Response:
    """``POST /embeddings`` for an authenticated key, answered in OpenAI's shape."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = embedding_model(gw, key, payload.get("model"))
    job = parse_embedding_job(payload, model)
    done = await embed(gw, request, key, model, job)
    return web.Response(body=orjson.dumps(_answer(done, job)), content_type="application/json")


async def embed(gw: Gateway, request: web.Request, key: KeyInfo, model: Model, job: EmbeddingJob) -> Embeddings:
    """Hold, call the upstream (failing over between channels), settle: for every client protocol."""
    routes = candidates(gw.directory.routes(model.id), model, EMBEDDING_ADAPTERS)
    async with limited(gw.rates, key, request):
        return await _embed(gw, request, key, model, routes, job)


async def _embed(gw: Gateway, request: web.Request, key: KeyInfo, model: Model, routes: list[Route], job: EmbeddingJob) -> Embeddings:
    first = routes[0]
    amount = usage_cost(Usage(job.token_bound(), 0), model.pricing)
    hold = Hold(request[REQUEST_ID], key.user_id, key.id, amount, model.id, endpoint="embeddings",
                channel_id=first.channel.id, upstream_model=first.upstream_id, budgets=key.budgets)  # fmt: skip

    def settled(settlement: Settlement) -> None:
        gw.metrics.settled("embeddings", model.id, settlement)

    async with Bill(gw.ledger, hold, prices=gw.directory.prices_json.get(model.id), on_settled=settled) as bill:
        attempts = admitted(routes, gw.health)[:MAX_ATTEMPTS]
        for number, route in enumerate(attempts):
            bill.channel_id, bill.upstream_model = route.channel.id, route.upstream_id
            try:
                vectors, tokens = await _call(gw, EMBEDDING_ADAPTERS[route.channel.protocol], route, model, job)
            except GatewayError as err:
                bill.error, bill.http_status = redacted(err, route.channel).message, err.status
                if number == len(attempts) - 1 or not judge(gw.health, route, err):
                    raise
                continue
            gw.health.succeeded(route.channel.id)
            usage = Usage(tokens, 0) if tokens is not None else Usage(job.token_estimate(), 0, estimated=True)
            bill.status, bill.http_status, bill.error, bill.usage = "ok", 200, None, usage
            bill.cost = usage_cost(usage, model.pricing)
            return Embeddings(model, vectors, usage, bill.cost)
    raise AssertionError("unreachable")  # pragma: no cover


async def _call(gw: Gateway, adapter: EmbeddingAdapter, route: Route, model: Model, job: EmbeddingJob) -> tuple[list[list[float]], int | None]:
    """Every batch through one channel, a few at a time: the vectors in input order and the tokens counted
    (None when the upstream counted none)."""
    size = int((model.embedding or {}).get("max_inputs") or MAX_INPUTS)
    batches = [job.inputs[i : i + size] for i in range(0, len(job.inputs), size)]
    gate = asyncio.Semaphore(PARALLEL_BATCHES)

    async def one(batch: list[Input]) -> Embedded:
        async with gate:
            status, body, retry_after = await fetch(gw.http, adapter.build_request(batch, route.upstream_id, route.channel, job.dimensions))
        if status != 200:
            raise adapter.error(status, body, route.channel, retry_after)
        return adapter.parse_response(body, len(batch))

    results = await asyncio.gather(*(one(b) for b in batches))
    vectors = [v for r in results for v in r.vectors]
    counts = [r.prompt_tokens for r in results]
    return vectors, None if any(c is None for c in counts) else sum(c for c in counts if c is not None)


def _answer(done: Embeddings, job: EmbeddingJob) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": _encoded(v, job.encoding_format)} for i, v in enumerate(done.vectors)]
    usage = done.usage
    out_usage: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens, "cost": usd_number(done.cost)}
    if usage.estimated:
        out_usage["estimated"] = True
    return {"object": "list", "data": data, "model": done.model.id, "usage": out_usage}


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    """base64 is the vector's little-endian float32 bytes, as OpenAI sends it (the SDKs decode it)."""
    if encoding == "float":
        return vector
    packed = array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()
