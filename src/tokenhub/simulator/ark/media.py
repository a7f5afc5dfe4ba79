"""The media the fake hands out URLs to: result videos, last frames and images."""

from __future__ import annotations

import base64

from aiohttp import web

from tokenhub.simulator.ark.tasks import STATE_KEY

FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isomfake-ark-video"
FAKE_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00fake-ark-image\xff\xd9"


async def video_file(request: web.Request) -> web.Response:
    task = request.app[STATE_KEY].tasks.get(request.match_info["task_id"])
    if task is None or task.status != "succeeded":
        raise web.HTTPNotFound()
    return web.Response(body=FAKE_MP4, content_type="video/mp4")


async def frame_file(request: web.Request) -> web.Response:
    task = request.app[STATE_KEY].tasks.get(request.match_info["task_id"])
    if task is None or task.status != "succeeded" or not task.return_last_frame:
        raise web.HTTPNotFound()
    return web.Response(body=FAKE_PNG, content_type="image/png")


async def image_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name.endswith(".png"):
        return web.Response(body=FAKE_PNG, content_type="image/png")
    if name.endswith(".jpeg"):
        return web.Response(body=FAKE_JPEG, content_type="image/jpeg")
    raise web.HTTPNotFound()
