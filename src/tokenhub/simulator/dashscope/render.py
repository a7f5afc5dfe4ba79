"""A task as a GET answers it: status, times, the result video URL and usage."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from tokenhub.simulator.common.mounting import public_base
from tokenhub.simulator.dashscope.errors import new_request_id
from tokenhub.simulator.dashscope.tasks import TaskRecord

VIDEO_PREFIX = "/dashscope-result"
URL_LIFETIME_SECONDS = 24 * 3600
PROMPT_EXTENSION = "Cinematic lighting, smooth camera motion, rich detail."
FAIL_CODE = "DataInspectionFailed"
FAIL_MESSAGE = "Output data may contain inappropriate content."


def sr_tier(task: TaskRecord) -> int:
    if task.resolution:
        return int(task.resolution.rstrip("P"))
    width, height = (int(v) for v in (task.size or "1920*1080").split("*"))
    short = min(width, height)
    return 1080 if short >= 1000 else 720 if short >= 700 else 480


def video_url(request: web.Request, task: TaskRecord) -> str:
    expires = int(time.time()) + URL_LIFETIME_SECONDS
    signature = uuid.uuid5(uuid.NAMESPACE_URL, f"{task.task_id}:{expires}").hex
    return (
        f"{public_base(request)}{VIDEO_PREFIX}/{task.task_id}.mp4"
        f"?Expires={expires}&OSSAccessKeyId=LTAIfakedashscope&Signature={signature}"
    )


def render_task(request: web.Request, task: TaskRecord) -> dict[str, Any]:
    if task.status == "UNKNOWN":
        return {"request_id": new_request_id(), "output": {"task_id": task.task_id, "task_status": "UNKNOWN"}}
    output: dict[str, Any] = {"task_id": task.task_id, "task_status": task.status, "submit_time": task.submit_time}
    if task.scheduled_time:
        output["scheduled_time"] = task.scheduled_time
    if task.end_time:
        output["end_time"] = task.end_time
    body: dict[str, Any] = {"request_id": new_request_id(), "output": output}
    if task.status == "FAILED":
        output["code"] = FAIL_CODE
        output["message"] = FAIL_MESSAGE
    elif task.status == "SUCCEEDED":
        output["video_url"] = video_url(request, task)
        if task.prompt is not None:
            output["orig_prompt"] = task.prompt
            if task.prompt_extend:
                output["actual_prompt"] = f"{task.prompt.strip()} {PROMPT_EXTENSION}"
        body["usage"] = {
            "video_duration": task.scenario.duration if task.scenario.duration is not None else task.duration,
            "video_ratio": task.size if task.kind == "t2v" else "standard",
            "video_count": 1,
            "SR": sr_tier(task),
        }
    return body
