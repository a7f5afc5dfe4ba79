"""The fake Ark's routes, error middleware and app factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from tokenhub.simulator.ark.callbacks import close_callbacks
from tokenhub.simulator.ark.errors import REQUEST_ID_KEY, ArkError, new_request_id
from tokenhub.simulator.ark.images import generate_images
from tokenhub.simulator.ark.media import frame_file, image_file, video_file
from tokenhub.simulator.ark.models import DEFAULT_MODELS
from tokenhub.simulator.ark.request import read_json
from tokenhub.simulator.ark.tasks import STATE_KEY, FakeArkState
from tokenhub.simulator.ark.video_tasks import create_task, delete_task, get_task, list_tasks
from tokenhub.simulator.common.mounting import local_path
from tokenhub.simulator.common.recording import install_state

API_PREFIX = "/api/v3"


@web.middleware
async def ark_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    request_id = new_request_id()
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except ArkError as exc:
        response = exc.response(request_id)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if not local_path(request).startswith(API_PREFIX + "/"):
            raise
        await read_json(request, request.app[STATE_KEY])  # no handler ran: record it here
        response = ArkError(
            exc.status,
            "NotFound" if exc.status == 404 else "MethodNotAllowed",
            f"The requested API {request.method} {request.path} is not found.",
        ).response(request_id)
    response.headers.setdefault("x-request-id", request_id)
    return response


def create_app(api_keys: Iterable[str] | None = None, *, models: Iterable[str] | None = None) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeArkState."""
    state = FakeArkState(
        api_keys=set(api_keys) if api_keys is not None else None, models=tuple(models) if models is not None else DEFAULT_MODELS
    )
    app = web.Application(middlewares=[ark_errors])
    install_state(app, STATE_KEY, state)
    tasks = f"{API_PREFIX}/contents/generations/tasks"
    app.router.add_post(tasks, create_task)
    app.router.add_get(tasks, list_tasks)
    app.router.add_get(tasks + "/{task_id}", get_task)
    app.router.add_delete(tasks + "/{task_id}", delete_task)
    app.router.add_post(f"{API_PREFIX}/images/generations", generate_images)
    app.router.add_get("/videos/{task_id}.mp4", video_file)
    app.router.add_get("/frames/{task_id}.png", frame_file)
    app.router.add_get("/images/{name}", image_file)
    app.on_cleanup.append(close_callbacks)
    return app
