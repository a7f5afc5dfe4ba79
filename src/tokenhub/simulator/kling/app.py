"""The fake Kling's routes (create, get, list per family; the result media), handlers and app factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.common.mounting import public_base
from tokenhub.simulator.common.recording import Headers, RecordedRequest, install_state
from tokenhub.simulator.kling.auth import authenticate
from tokenhub.simulator.kling.errors import KlingError, concurrency_error, invalid, new_request_id, status_error
from tokenhub.simulator.kling.models import DEFAULT_MODELS, FAMILIES
from tokenhub.simulator.kling.scenario import Scenario
from tokenhub.simulator.kling.tasks import (
    MEDIA_PREFIX,
    STATE_KEY,
    TERMINAL,
    FakeKlingState,
    KlingTask,
    advance,
    new_numeric_id,
    now_ms,
    render_task,
    task_info,
)
from tokenhub.simulator.kling.validation import validate_create

PAGE_NUM_RANGE = (1, 1000)
PAGE_SIZE_RANGE = (1, 500)


# A minimal ISO-BMFF header (an `ftyp` box): enough for a client to see an MP4.
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08free"


def envelope(data: Any) -> web.Response:
    body = {"code": 0, "message": "SUCCEED", "request_id": new_request_id(), "data": data}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def record(request: web.Request, state: FakeKlingState) -> tuple[Any, bytes]:
    raw = await request.read()
    parsed: Any = None
    if raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
    state.requests.append(RecordedRequest(request.method, request.path, Headers(request.headers.items()), parsed, raw))
    return parsed, raw


def create_handler(family: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def create(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        body, _ = await record(request, state)
        try:
            owner = authenticate(request, state)
            create = validate_create(body, family, state)
            scenario = Scenario.parse(create.directive_text)
            if scenario.status is not None:
                raise status_error(scenario.status)
            if scenario.rate_limit:
                raise concurrency_error()
            mine = [t for t in state.tasks.values() if t.owner == owner]
            if create.external_task_id and any(t.external_task_id == create.external_task_id for t in mine):
                raise invalid(f"external_task_id {create.external_task_id!r} is already used.")
            if state.max_concurrency is not None and sum(t.status not in TERMINAL for t in mine) >= state.max_concurrency:
                raise concurrency_error()
        except KlingError as exc:
            return exc.response()
        created = now_ms()
        task = KlingTask(
            task_id=new_numeric_id(),
            family=family,
            owner=owner,
            model_name=create.model_name,
            mode=create.mode,
            duration=create.duration,
            request=body,
            scenario=scenario,
            media_base=public_base(request),
            external_task_id=create.external_task_id,
            callback_url=create.callback_url,
            poll_error_pending=scenario.poll_status is not None,
            created_at=created,
            updated_at=created,
            video_id=new_numeric_id(),
        )
        state.tasks[task.task_id] = task
        return envelope(
            {
                "task_id": task.task_id,
                "task_status": task.status,
                "task_info": task_info(task),
                "created_at": task.created_at,
                "updated_at": task.updated_at,
            }
        )

    return create


def get_handler(family: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def get_task(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        await record(request, state)
        try:
            owner = authenticate(request, state)
            task = state.find(owner, family, request.match_info["task_id"])
            if task is None:
                raise KlingError(404, 1203, "The requested task does not exist.")
            if task.poll_error_pending:
                task.poll_error_pending = False
                raise status_error(task.scenario.poll_status or 500)
        except KlingError as exc:
            return exc.response()
        advance(task)
        return envelope(render_task(task))

    return get_task


def _page_param(request: web.Request, name: str, default: int, bounds: tuple[int, int]) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = bounds[0] - 1
    if not bounds[0] <= value <= bounds[1]:
        raise invalid(f"{name} must be an integer in [{bounds[0]}, {bounds[1]}]; got {raw!r}.")
    return value


def list_handler(family: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def list_tasks(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        await record(request, state)
        try:
            owner = authenticate(request, state)
            page = _page_param(request, "pageNum", 1, PAGE_NUM_RANGE)
            size = _page_param(request, "pageSize", 30, PAGE_SIZE_RANGE)
        except KlingError as exc:
            return exc.response()
        # newest first: tasks are stored in creation order
        ordered = [t for t in reversed(state.tasks.values()) if t.owner == owner and t.family == family]
        return envelope([render_task(t) for t in ordered[(page - 1) * size : page * size]])

    return list_tasks


async def media(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    await record(request, state)
    task = state.by_video_id(request.match_info["video_id"])
    if task is None:
        return web.Response(status=404, text="Not Found")
    return web.Response(body=FAKE_MP4, content_type="video/mp4")


@web.middleware
async def kling_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return KlingError(404, 1202, f"Invalid request method {request.method} for {request.path}.").response()
    except web.HTTPNotFound:
        return KlingError(404, 1203, f"The requested resource does not exist: {request.path}.").response()


def create_app(
    credentials: dict[str, str] | None = None, *, models: Iterable[str] | None = None, max_concurrency: int | None = None
) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeKlingState.

    ``credentials`` maps access key → secret key (None: no auth).  ``models`` replaces the accepted
    ``model_name`` values (known Kling models stay limited to their families; other names are accepted on
    text2video and image2video with "5"/"10" durations).
    """
    state = FakeKlingState(
        credentials=dict(credentials) if credentials is not None else None,
        models=tuple(models) if models is not None else DEFAULT_MODELS,
        max_concurrency=max_concurrency,
    )
    app = web.Application(middlewares=[kling_not_found])
    install_state(app, STATE_KEY, state)
    for family in FAMILIES:
        app.router.add_post(f"/v1/videos/{family}", create_handler(family))
        app.router.add_get(f"/v1/videos/{family}", list_handler(family))
        app.router.add_get(f"/v1/videos/{family}/{{task_id}}", get_handler(family))
    app.router.add_get(MEDIA_PREFIX + "/{video_id}.mp4", media)
    return app
