"""Media endpoints: POST /images/generations (synchronous) and /videos/generations (asynchronous tasks)."""

from __future__ import annotations

import orjson
from aiohttp import web

from tokenhub.digits import whole_number
from tokenhub.errors import InvalidRequest
from tokenhub.relay.serve_media import images_for_key, video_for_key
from tokenhub.surface import RouteGroup, authenticate, read_json
from tokenhub.tasks.service import get_task, list_tasks

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

    async def images(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        payload, _ = await read_json(request, self.gw.settings.max_body_bytes)
        return await images_for_key(self.gw, request, key, payload)

    async def create_video(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        payload, _ = await read_json(request, self.gw.settings.max_body_bytes)
        return _json(await video_for_key(self.gw, request, key, payload))

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
