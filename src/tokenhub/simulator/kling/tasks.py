"""A video task as the fake holds it, its scripted life from ``submitted`` on, and the fake's state."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tokenhub.simulator.common.recording import RecordedRequest
from tokenhub.simulator.kling.models import DEFAULT_MODELS
from tokenhub.simulator.kling.scenario import Scenario

MEDIA_PREFIX = "/fake-media/kling"
SUBMITTED, PROCESSING, SUCCEED, FAILED = "submitted", "processing", "succeed", "failed"
TERMINAL = frozenset({SUCCEED, FAILED})
FAIL_MESSAGE = "Video generation failed (simulated by #fake:fail)."


@dataclass
class KlingTask:
    task_id: str
    family: str
    owner: str  # the access key (JWT iss) that created it
    model_name: str
    mode: str
    duration: str  # as requested (a string, like the wire)
    request: dict[str, Any]
    scenario: Scenario
    media_base: str  # scheme://host of this fake, for the result URL
    external_task_id: str | None = None
    callback_url: str | None = None
    status: str = SUBMITTED
    status_history: list[str] = field(default_factory=lambda: [SUBMITTED])
    poll_count: int = 0
    poll_error_pending: bool = False
    created_at: int = 0
    updated_at: int = 0
    video_id: str = ""

    @property
    def video_url(self) -> str:
        return f"{self.media_base}{MEDIA_PREFIX}/{self.video_id}.mp4"

    @property
    def reported_duration(self) -> str:
        return self.scenario.duration if self.scenario.duration is not None else self.duration


@dataclass
class FakeKlingState:
    credentials: dict[str, str] | None = None  # access key → secret key
    models: tuple[str, ...] = DEFAULT_MODELS
    max_concurrency: int | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    tasks: dict[str, KlingTask] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget recorded requests and every task."""
        self.requests.clear()
        self.tasks.clear()

    def find(self, owner: str, family: str, key: str) -> KlingTask | None:
        task = self.tasks.get(key)
        if task is None:
            task = next((t for t in self.tasks.values() if t.external_task_id == key and t.owner == owner), None)
        if task is None or task.owner != owner or task.family != family:
            return None
        return task

    def by_video_id(self, video_id: str) -> KlingTask | None:
        return next((t for t in self.tasks.values() if t.video_id == video_id and t.status == SUCCEED), None)


STATE_KEY = web.AppKey("tokenhub_fake_kling_state", FakeKlingState)


def now_ms() -> int:
    return int(time.time() * 1000)


def new_numeric_id() -> str:
    """An 18-digit numeric string, the shape of Kling's task ids."""
    return str(10**17 + secrets.randbelow(9 * 10**17))


def advance(task: KlingTask) -> None:
    """Count one poll and move the task along its scripted lifecycle."""
    if task.status in TERMINAL:
        return
    task.poll_count += 1
    scenario = task.scenario
    if task.poll_count < scenario.queued:
        status = SUBMITTED
    elif scenario.hang or task.poll_count < scenario.queued + scenario.polls:
        status = PROCESSING
    else:
        status = FAILED if scenario.fail else SUCCEED
    if status != task.status:
        task.status = status
        task.status_history.append(status)
        task.updated_at = max(now_ms(), task.updated_at + 1)


def unit_deduction(task: KlingTask) -> str:
    units = float(task.reported_duration) / 5 * (1.75 if task.mode == "pro" else 1.0)
    return f"{units:g}"


def task_info(task: KlingTask) -> dict[str, Any]:
    return {"external_task_id": task.external_task_id} if task.external_task_id else {}


def render_task(task: KlingTask) -> dict[str, Any]:
    data: dict[str, Any] = {
        "task_id": task.task_id,
        "task_status": task.status,
        "task_status_msg": FAIL_MESSAGE if task.status == FAILED else "",
        "task_info": task_info(task),
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }
    watermark = task.request.get("watermark_info")
    watermarked = isinstance(watermark, dict) and watermark.get("enabled") is True
    if isinstance(watermark, dict):
        data["watermark_info"] = {"enabled": watermarked}
    if task.status == SUCCEED:
        video = {"id": task.video_id, "url": task.video_url, "duration": task.reported_duration}
        if watermarked:
            video["watermark_url"] = task.video_url + "?watermark=1"
        data["task_result"] = {"videos": [video]}
        data["final_unit_deduction"] = unit_deduction(task)
    return data
