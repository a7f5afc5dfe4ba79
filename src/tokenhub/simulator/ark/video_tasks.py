"""The video task endpoints: create, get, list and delete a task."""

from __future__ import annotations

import time

from aiohttp import web

from tokenhub.simulator.ark.callbacks import schedule_callback
from tokenhub.simulator.ark.errors import invalid, status_error
from tokenhub.simulator.ark.models import AUTO_DURATION, RATIOS, video_caps
from tokenhub.simulator.ark.request import begin, check_bool, check_model, is_int, json_response, parse_content, require_object
from tokenhub.simulator.ark.scenario import Scenario
from tokenhub.simulator.ark.tasks import (
    DEFAULT_EXPIRES_AFTER,
    TASK_STATUSES,
    TERMINAL_STATUSES,
    ArkTask,
    derived_seed,
    new_task_id,
)
from tokenhub.simulator.common.mounting import public_base


async def create_task(request: web.Request) -> web.Response:
    state, body = await begin(request)
    body = require_object(body)
    model = check_model(state, body, ("seedance",), "video generation tasks")
    caps = video_caps(model)
    prompt, roles = parse_content(body.get("content"), caps)
    scenario = Scenario.parse(prompt, "content")
    if scenario.status is not None:
        raise status_error(scenario.status, scenario.error_code, scenario.retry_after)

    duration = body.get("duration", AUTO_DURATION)
    low, high = caps.durations
    if not is_int(duration) or not (low <= duration <= high or (duration == -1 and caps.auto_duration)):
        allowed = f"an integer in [{low}, {high}]" + (" or -1" if caps.auto_duration else "")
        raise invalid("duration", f"expected {allowed}")
    resolution = body.get("resolution", caps.default_resolution)
    if resolution not in caps.resolutions:
        raise invalid("resolution", "expected one of " + ", ".join(caps.resolutions))
    ratio = body.get("ratio", "adaptive" if roles["first_frame"] else "16:9")
    if ratio not in (*RATIOS, "adaptive"):
        raise invalid("ratio", "expected one of " + ", ".join((*RATIOS, "adaptive")))
    for name in ("generate_audio", "watermark", "camera_fixed", "return_last_frame"):
        check_bool(body, name)
    seed = body.get("seed", -1)
    if not is_int(seed) or not -1 <= seed <= 2**32 - 1:
        raise invalid("seed", "expected an integer in [-1, 4294967295]")
    service_tier = body.get("service_tier", "default")
    if service_tier not in ("default", "flex"):
        raise invalid("service_tier", "expected default or flex")
    expires_after = body.get("execution_expires_after", DEFAULT_EXPIRES_AFTER)
    if not is_int(expires_after) or not 3600 <= expires_after <= 259_200:
        raise invalid("execution_expires_after", "expected an integer in [3600, 259200]")
    callback_url = body.get("callback_url")
    if callback_url is not None and (not isinstance(callback_url, str) or not callback_url):
        raise invalid("callback_url", "expected a URL string")

    task_id = new_task_id()
    now = int(time.time())
    task = ArkTask(
        id=task_id,
        model=model,
        request=body,
        scenario=scenario,
        origin=public_base(request),
        created_at=now,
        updated_at=now,
        duration=duration,
        resolution=resolution,
        ratio=ratio,
        seed=seed if seed != -1 else derived_seed(task_id),
        generate_audio=body.get("generate_audio", True) if caps.audio else None,
        service_tier=service_tier,
        execution_expires_after=expires_after,
        return_last_frame=bool(body.get("return_last_frame", False)),
        callback_url=callback_url,
        pixels=caps.pixels,
        poll_errors_left=scenario.poll_errors if scenario.poll_status else 0,
    )
    state.tasks[task_id] = task
    schedule_callback(state, task)
    return json_response({"id": task_id})


async def get_task(request: web.Request) -> web.Response:
    state, _ = await begin(request)
    task = state.live_task(request.match_info["task_id"])
    sc = task.scenario
    if task.poll_errors_left > 0 and sc.poll_status is not None:
        task.poll_errors_left -= 1
        raise status_error(sc.poll_status, sc.error_code, sc.retry_after)
    k = task.polls
    task.polls += 1
    if task.status not in TERMINAL_STATUSES and task.set_status(task.stage(k)):
        schedule_callback(state, task)
    return json_response(task.body())


def query_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 500:
        raise invalid(name, "expected an integer in [1, 500]")
    return value


async def list_tasks(request: web.Request) -> web.Response:
    state, _ = await begin(request)
    page_num = query_int(request, "page_num", 1)
    page_size = query_int(request, "page_size", 10)
    status = request.query.get("filter.status")
    if status is not None and status not in TASK_STATUSES:
        raise invalid("filter.status", "expected one of " + ", ".join(TASK_STATUSES))
    model = request.query.get("filter.model")
    tier = request.query.get("filter.service_tier")
    ids = set(request.query.getall("filter.task_ids", []))
    tasks = [
        t
        for t in reversed(state.tasks.values())
        if not t.deleted
        and (status is None or t.status == status)
        and (model is None or t.model == model)
        and (tier is None or t.service_tier == tier)
        and (not ids or t.id in ids)
    ]
    page = tasks[(page_num - 1) * page_size : page_num * page_size]
    return json_response({"items": [t.body() for t in page], "total": len(tasks)})


async def delete_task(request: web.Request) -> web.Response:
    state, _ = await begin(request)
    task = state.live_task(request.match_info["task_id"])
    if task.status == "queued":
        task.set_status("cancelled")
        schedule_callback(state, task)
    elif task.status in ("succeeded", "failed", "expired"):
        task.deleted = True
    else:
        raise invalid("id", f"a task in status {task.status} cannot be cancelled or deleted")
    return json_response({})
