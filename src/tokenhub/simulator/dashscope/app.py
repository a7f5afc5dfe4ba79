"""The fake DashScope's routes (create, get a task, the result video), handlers and app factory."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from tokenhub.simulator.common.recording import install_state, read_json
from tokenhub.simulator.dashscope.errors import DashScopeError, invalid, json_response, new_request_id, status_error
from tokenhub.simulator.dashscope.models import ModelSpec, model_table
from tokenhub.simulator.dashscope.render import VIDEO_PREFIX, render_task
from tokenhub.simulator.dashscope.scenario import Scenario
from tokenhub.simulator.dashscope.tasks import STATE_KEY, FakeDashScopeState, TaskRecord, now_string
from tokenhub.simulator.dashscope.validation import validate_identity, validate_input

API_PREFIX = "/api/v1"
CREATE_PATH = f"{API_PREFIX}/services/aigc/video-generation/video-synthesis"
TASK_PATH = f"{API_PREFIX}/tasks/{{task_id}}"
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isomfake-dashscope-video"


async def record(request: web.Request, state: FakeDashScopeState) -> tuple[Any, bool]:
    """Record the request; return (parsed body or None, whether the body was valid JSON — an empty one is)."""
    recorded, ok = await read_json(request, state)
    return recorded.json, ok or not recorded.raw


def check_auth(request: web.Request, state: FakeDashScopeState) -> None:
    if state.api_keys is None:
        return
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise DashScopeError(401, "InvalidApiKey", "No API-key provided.")
    if key.strip() not in state.api_keys:
        raise DashScopeError(401, "InvalidApiKey", "Invalid API-key provided.")


async def create_task(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body, valid_json = await record(request, state)
        check_auth(request, state)
        if not valid_json:
            raise invalid("Request body is not valid JSON.")
        req = validate_identity(body, state, request)
        scenario = Scenario.parse(req.prompt or "")
        size, resolution, duration, prompt_extend = validate_input(req, body)
        if scenario.status is not None:
            raise status_error(scenario.status)
    except DashScopeError as exc:
        return exc.response()
    task = TaskRecord(
        task_id=str(uuid.uuid4()),
        model=req.model,
        kind=req.spec.kind,
        request=body,
        scenario=scenario,
        prompt=req.prompt,
        prompt_extend=bool(prompt_extend),
        size=size,
        resolution=resolution,
        duration=duration,
        submit_time=now_string(),
    )
    state.tasks[task.task_id] = task
    return json_response({"output": {"task_status": "PENDING", "task_id": task.task_id}, "request_id": new_request_id()})


async def get_task(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    await record(request, state)
    try:
        check_auth(request, state)
    except DashScopeError as exc:
        return exc.response()
    task_id = request.match_info["task_id"]
    task = state.tasks.get(task_id)
    if task is None:
        return json_response({"request_id": new_request_id(), "output": {"task_id": task_id, "task_status": "UNKNOWN"}})
    if task.scenario.poll_status is not None and task.failed_polls == 0:
        task.failed_polls += 1
        return status_error(task.scenario.poll_status).response()
    task.advance()
    return json_response(render_task(request, task))


async def get_video(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    await record(request, state)
    task = state.tasks.get(request.match_info["task_id"])
    if task is None or task.status != "SUCCEEDED":
        return web.Response(status=404, text="NoSuchKey", content_type="text/plain")
    return web.Response(body=VIDEO_BYTES, content_type="video/mp4")


@web.middleware
async def dashscope_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        code = "NotFound" if exc.status == 404 else "InvalidParameter"
        message = "Not found!" if exc.status == 404 else f"Method {request.method} not allowed."
        return DashScopeError(exc.status, code, message).response()


def create_app(
    api_keys: Iterable[str] | None = None, *, models: Mapping[str, ModelSpec] | Iterable[str] | None = None
) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeDashScopeState.

    ``models``: None for ``DEFAULT_MODELS``, an iterable of names from it, or a
    mapping name → ModelSpec.
    """
    state = FakeDashScopeState(api_keys=set(api_keys) if api_keys is not None else None, models=model_table(models))
    app = web.Application(middlewares=[dashscope_not_found])
    install_state(app, STATE_KEY, state)
    app.router.add_post(CREATE_PATH, create_task)
    app.router.add_get(TASK_PATH, get_task)
    app.router.add_get(VIDEO_PREFIX + "/{task_id}.mp4", get_video)
    return app
