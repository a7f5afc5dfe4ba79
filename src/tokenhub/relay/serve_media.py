"""An image or video request for an authenticated key, as every surface serves it (the API's media routes,
the console's playground). Loaded with the first such request, with the media protocols."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tokenhub.catalog.model import Model
from tokenhub.directory import KeyInfo
from tokenhub.errors import InvalidRequest
from tokenhub.providers.registry import image_adapters, video_adapters
from tokenhub.relay.admission import limited
from tokenhub.relay.images import generate_images, parse_image_job
from tokenhub.relay.routing import pick_route
from tokenhub.tasks.request import parse_callback_url, parse_video_job, price_per_second
from tokenhub.tasks.service import create_task
from tokenhub.upstream import Route

if TYPE_CHECKING:  # the gateway wires the relay in: a type only
    from tokenhub.gateway import Gateway


async def images_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: object) -> web.Response:
    """``POST /images/generations`` for an authenticated key."""
    adapters = image_adapters()
    model, route = _media_route(gw, payload, key, "image", adapters)
    job = parse_image_job(payload, model)
    async with limited(gw.rates, key, request):
        return await generate_images(request, gw, key, model, route, adapters[route.channel.protocol], job)


async def video_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: object) -> dict[str, object]:
    """``POST /videos/generations`` for an authenticated key: the new task."""
    adapters = video_adapters()
    model, route = _media_route(gw, payload, key, "video", adapters)
    assert isinstance(payload, dict)
    job = parse_video_job(payload, model)
    callback_url = parse_callback_url(payload.get("callback_url"))
    async with limited(gw.rates, key, request):
        adapter = adapters[route.channel.protocol]
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
