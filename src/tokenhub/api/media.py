"""Media endpoints: POST /images/generations (synchronous) and /videos/generations (asynchronous tasks)."""

from __future__ import annotations

import orjson
from aiohttp import web

from tokenhub.api.requests import authenticate, read_json
from tokenhub.api.routes import RouteGroup
from tokenhub.catalog.model import Model
from tokenhub.digits import whole_number
from tokenhub.directory import KeyInfo
from tokenhub.errors import InvalidRequest
from tokenhub.providers.registry import IMAGE_ADAPTERS, VIDEO_ADAPTERS
from tokenhub.relay.admission import limited
from tokenhub.relay.images import generate_images, parse_image_job
from tokenhub.relay.routing import pick_route
from tokenhub.tasks.request import parse_callback_url, parse_video_job, price_per_second
from tokenhub.tasks.service import create_task, get_task, list_tasks
from tokenhub.upstream import Route

MAX_PAGE = 100


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class MediaAPI(RouteGroup):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/images/generations", self.images),
            web.post("/api/v1/videos/generations", self.create_video),
            web.get("/api/v1/videos/generations", self.list_videos),
            web.get("/api/v1/videos/generations/{task_id}", self.get_video),
        ]

    def _resolve(self, payload: object, key: KeyInfo, kind: str, protocols: dict[str, object]) -> tuple[Model, Route]:
        if not isinstance(payload, dict):
            raise InvalidRequest("the request body must be a JSON object")
        name = payload.get("model")
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest(f"'model' is required: a {kind} model id", param="model")
        model = self.gw.directory.catalog.resolve(name.strip())
        if model.kind != kind:
            raise InvalidRequest(f"'{model.id}' is a {model.kind} model, not a {kind} model", param="model")
        key.check_model(model)
        return model, pick_route(self.gw.directory.routes(model.id), model, protocols)

    async def images(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        payload, _ = await read_json(request, self.gw.settings.max_body_bytes)
        return await self.images_for_key(request, key, payload)

    async def images_for_key(self, request: web.Request, key: KeyInfo, payload: object) -> web.Response:
        """``POST /images/generations`` for an authenticated key (the console playground uses it too)."""
        model, route = self._resolve(payload, key, "image", IMAGE_ADAPTERS)
        job = parse_image_job(payload, model)
        async with limited(self.gw.rates, key, request):
            return await generate_images(request, self.gw, key, model, route, IMAGE_ADAPTERS[route.channel.protocol], job)

    async def create_video(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        payload, _ = await read_json(request, self.gw.settings.max_body_bytes)
        return _json(await self.video_for_key(request, key, payload))

    async def video_for_key(self, request: web.Request, key: KeyInfo, payload: object) -> dict[str, object]:
        """``POST /videos/generations`` for an authenticated key: the new task (the console playground uses it too)."""
        gw = self.gw
        model, route = self._resolve(payload, key, "video", VIDEO_ADAPTERS)
        assert isinstance(payload, dict)
        job = parse_video_job(payload, model)
        callback_url = parse_callback_url(payload.get("callback_url"))
        async with limited(gw.rates, key, request):
            return await create_task(
                gw, key, model, route, VIDEO_ADAPTERS[route.channel.protocol], job, price_per_second(model, job), callback_url
            )

    async def get_video(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        return _json(await get_task(self.gw, key, request.match_info["task_id"]))

    async def list_videos(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        limit = whole_number(request.query.get("limit", "20"), 3)
        if limit is None or not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"'limit' must be a whole number from 1 to {MAX_PAGE}", param="limit")
        before = request.query.get("before") or None
        return _json(await list_tasks(self.gw, key, limit=limit, before=before))
