"""A video task as the fake holds it (its life from ``queued`` to a terminal status) and the fake's state."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tokenhub.simulator.ark.errors import ArkError
from tokenhub.simulator.ark.models import AUTO_DURATION, DEFAULT_MODELS, FPS, RATIOS
from tokenhub.simulator.ark.scenario import Scenario
from tokenhub.simulator.common.recording import RecordedRequest

TASK_STATUSES = ("queued", "running", "cancelled", "succeeded", "failed", "expired")
TERMINAL_STATUSES = frozenset({"cancelled", "succeeded", "failed", "expired"})
DEFAULT_EXPIRES_AFTER = 172_800
_ID_CHARS = string.ascii_lowercase + string.digits


@dataclass
class CallbackAttempt:
    task_id: str
    status: str  # the task status the body carried
    url: str
    attempt: int  # 1 for the first try
    http_status: int | None  # None when the POST itself failed
    error: str | None
    body: dict[str, Any]


@dataclass
class ArkTask:
    """One video task as the fake holds it."""

    id: str
    model: str
    request: dict[str, Any]
    scenario: Scenario
    origin: str  # scheme://host:port the task was created through (media URLs live there)
    created_at: int
    updated_at: int
    duration: int  # as requested (-1: model decides)
    resolution: str
    ratio: str  # as requested (may be "adaptive")
    seed: int
    generate_audio: bool | None  # None: the model has no audio (not reported)
    service_tier: str
    execution_expires_after: int
    return_last_frame: bool
    callback_url: str | None
    pixels: dict[str, tuple[tuple[int, int], ...]]
    status: str = "queued"
    history: list[str] = field(default_factory=lambda: ["queued"])
    polls: int = 0  # GETs answered with the task (failed ``poll_status`` GETs excluded)
    poll_errors_left: int = 0
    deleted: bool = False
    callback_chain: asyncio.Task[None] | None = field(default=None, repr=False, compare=False)

    @property
    def reported_duration(self) -> int:
        if self.scenario.duration is not None:
            return self.scenario.duration
        return AUTO_DURATION if self.duration == -1 else self.duration

    @property
    def reported_ratio(self) -> str:
        return "16:9" if self.ratio == "adaptive" else self.ratio

    @property
    def completion_tokens(self) -> int:
        width, height = self.pixels[self.resolution][RATIOS.index(self.reported_ratio)]
        return width * height * (FPS * self.reported_duration + 1) // 1024

    def stage(self, k: int) -> str:
        """The status the k-th (0-based) successful GET answers."""
        sc = self.scenario
        if k < sc.queued:
            return "queued"
        if sc.cancel_upstream:
            return "cancelled"
        if sc.hang or k < sc.queued + sc.polls:
            return "running"
        if sc.fail is not None:
            return "failed"
        return "expired" if sc.expire else "succeeded"

    def set_status(self, status: str) -> bool:
        if status == self.status:
            return False
        self.status = status
        self.updated_at = max(self.updated_at, int(time.time()))
        self.history.append(status)
        return True

    def body(self) -> dict[str, Any]:
        succeeded = self.status == "succeeded"
        out: dict[str, Any] = {"id": self.id, "model": self.model, "status": self.status, "error": None}
        if self.status == "failed":
            out["error"] = {
                "code": self.scenario.fail or "OutputVideoSensitiveContentDetected",
                "message": "The request failed because the output video may contain sensitive information (simulated).",
            }
        if succeeded:
            content = {"video_url": f"{self.origin}/videos/{self.id}.mp4"}
            if self.return_last_frame:
                content["last_frame_url"] = f"{self.origin}/frames/{self.id}.png"
            out["content"] = content
            tokens = self.completion_tokens
            out["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        out.update(
            {
                "created_at": self.created_at,
                "updated_at": self.updated_at,
                "seed": self.seed,
                "resolution": self.resolution,
                "ratio": self.reported_ratio if succeeded else self.ratio,
                "duration": self.reported_duration if succeeded else self.duration,
                "framespersecond": FPS,
            }
        )
        if self.generate_audio is not None:
            out["generate_audio"] = self.generate_audio
        out.update(
            {
                "draft": False,
                "service_tier": self.service_tier,
                "execution_expires_after": self.execution_expires_after,
                "priority": 0,
            }
        )
        return out


@dataclass
class FakeArkState:
    api_keys: set[str] | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    requests: list[RecordedRequest] = field(default_factory=list)
    tasks: dict[str, ArkTask] = field(default_factory=dict)
    callbacks: list[CallbackAttempt] = field(default_factory=list)
    callback_timeout: float = 5.0
    callback_retry_delay: float = 0.05
    pending_callbacks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    session: aiohttp.ClientSession | None = field(default=None, repr=False)

    def reset(self) -> None:
        """Forget recorded requests, tasks and callback attempts (in-flight deliveries still finish)."""
        self.requests.clear()
        self.tasks.clear()
        self.callbacks.clear()

    def live_task(self, task_id: str) -> ArkTask:
        task = self.tasks.get(task_id)
        if task is None or task.deleted:
            raise ArkError(404, "ResourceNotFound", f"The specified task `{task_id}` is not found.", param="id")
        return task


STATE_KEY = web.AppKey("tokenhub_fake_ark_state", FakeArkState)


def new_task_id() -> str:
    return "cgt-" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + "".join(secrets.choice(_ID_CHARS) for _ in range(5))


def derived_seed(task_id: str) -> int:
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big") % 100_000
