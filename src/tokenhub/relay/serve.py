"""A request for an authenticated key, as every surface serves it: the API's routes and the console's
playground run the same path (chat, images, videos), so neither reaches into the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tokenhub.catalog.model import Model
from tokenhub.directory import KeyInfo
from tokenhub.errors import InvalidRequest
from tokenhub.providers.openai.legacy import CompletionsRequest, CompletionsResponder, chat_view
from tokenhub.providers.openai.responder import OpenAIResponder
from tokenhub.providers.registry import IMAGE_ADAPTERS, VIDEO_ADAPTERS
from tokenhub.relay.admission import limited
from tokenhub.relay.call import ChatCall
from tokenhub.relay.images import generate_images, parse_image_job
from tokenhub.relay.relay import Relay
from tokenhub.relay.routing import pick_route
from tokenhub.tasks.request import parse_callback_url, parse_video_job, price_per_second
from tokenhub.tasks.service import create_task
from tokenhub.upstream import Route

if TYPE_CHECKING:  # the gateway wires the relay in: a type only
    from tokenhub.gateway import Gateway


async def chat_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: object, size: int) -> web.StreamResponse:
    """``POST /chat/completions`` for an authenticated key."""
    call = ChatCall.parse(payload)
    relay = Relay(gw)
    model = relay.resolve(call.model_name, key)
    responder = OpenAIResponder(model.id, call.include_usage, exclude_reasoning=call.extensions.exclude_reasoning)
    return await relay.handle(request, key, call, size, responder, model=model)


async def completions_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: object, size: int) -> web.StreamResponse:
    """``POST /completions`` (legacy text completions) for an authenticated key: models marked ``completions``."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    call = ChatCall.parse(chat_view(payload))
    relay = Relay(gw)
    model = relay.resolve(call.model_name, key)
    if not model.completions:
        raise InvalidRequest(f"'{model.id}' does not serve legacy text completions; use /api/v1/chat/completions", param="model")
    responder = CompletionsResponder(model.id, call.include_usage)
    return await relay.handle(request, key, call, size, responder, model=model, client_request=CompletionsRequest(payload, call.stream))


async def images_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: object) -> web.Response:
    """``POST /images/generations`` for an authenticated key."""
    model, route = _media_route(gw, payload, key, "image", IMAGE_ADAPTERS)
    job = parse_image_job(payload, model)
    async with limited(gw.rates, key, request):
        return await generate_images(request, gw, key, model, route, IMAGE_ADAPTERS[route.channel.protocol], job)


async def video_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: object) -> dict[str, object]:
    """``POST /videos/generations`` for an authenticated key: the new task."""
    model, route = _media_route(gw, payload, key, "video", VIDEO_ADAPTERS)
    assert isinstance(payload, dict)
    job = parse_video_job(payload, model)
    callback_url = parse_callback_url(payload.get("callback_url"))
    async with limited(gw.rates, key, request):
        adapter = VIDEO_ADAPTERS[route.channel.protocol]
        return await create_task(gw, key, model, route, adapter, job, price_per_second(model, job), callback_url)


def _media_route(gw: Gateway, payload: object, key: KeyInfo, kind: str, protocols: dict[str, Any]) -> tuple[Model, Route]:
    """The model a media request names (of the right kind, allowed for the key) and a route that speaks its protocol."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    name = payload.get("model")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"'model' is required: a {kind} model id", param="model")
    model = gw.directory.catalog.resolve(name.strip())
    if model.kind != kind:
        raise InvalidRequest(f"'{model.id}' is a {model.kind} model, not a {kind} model", param="model")
    key.check_model(model)
    return model, pick_route(gw.directory.routes(model.id), model, protocols)
