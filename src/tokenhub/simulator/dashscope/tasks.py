"""A video task as the fake holds it, its scripted life from ``PENDING`` on, and the fake's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tokenhub.simulator.common.recording import RecordedRequest, RecordingState
from tokenhub.simulator.dashscope.models import DEFAULT_MODELS, ModelSpec
from tokenhub.simulator.dashscope.scenario import Scenario

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"})


@dataclass
class TaskRecord:
    task_id: str
    model: str
    kind: str
    request: dict[str, Any]
    scenario: Scenario
    prompt: str | None
    prompt_extend: bool
    size: str | None
    resolution: str | None
    duration: int
    submit_time: str
    scheduled_time: str | None = None
    end_time: str | None = None
    status: str = "PENDING"
    history: list[str] = field(default_factory=lambda: ["PENDING"])  # create + every successful poll
    polls: int = 0
    failed_polls: int = 0

    def advance(self) -> None:
        """One successful poll: move along the lifecycle (terminal states stay)."""
        self.polls += 1
        if self.status not in TERMINAL:
            new = self._status_for_poll(self.polls)
            if new == "RUNNING" and self.scheduled_time is None:
                self.scheduled_time = now_string()
            if new in TERMINAL:
                self.scheduled_time = self.scheduled_time or now_string()
                self.end_time = now_string()
            self.status = new
        self.history.append(self.status)

    def _status_for_poll(self, n: int) -> str:
        s = self.scenario
        if n <= s.queued:
            return "PENDING"
        if s.cancel_upstream:
            return "CANCELED"
        if s.hang or n <= s.queued + s.polls:
            return "RUNNING"
        if s.fail:
            return "FAILED"
        if s.unknown:
            return "UNKNOWN"
        return "SUCCEEDED"


@dataclass
class FakeDashScopeState(RecordingState[RecordedRequest]):
    """``requests`` comes from RecordingState."""

    api_keys: set[str] | None = None
    models: dict[str, ModelSpec] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    tasks: dict[str, TaskRecord] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget recorded requests and tasks."""
        super().reset()
        self.tasks.clear()


STATE_KEY = web.AppKey("tokenhub_fake_dashscope_state", FakeDashScopeState)


def now_string() -> str:
    """DashScope's task time format: local time with milliseconds."""
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
