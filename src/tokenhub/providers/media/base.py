"""What image and video adapters answer. Pure translation, like the chat adapters (base.py).

    VideoAdapter                                   (an asynchronous upstream task)
      build_submit(job, upstream_model, channel)   -> UpstreamRequest
      parse_submit(body bytes)                     -> the upstream's task id
      build_poll(upstream_task_id, job, channel, upstream_model)
                                                   -> UpstreamRequest (a GET: empty body)
      parse_poll(body bytes)                       -> TaskUpdate
      error(status, body, channel, retry_after)    -> GatewayError
    ImageAdapter                                   (synchronous)
      build_request(job, upstream_model, channel)  -> list[UpstreamRequest] (one per call the upstream needs)
      parse_response(body bytes)                   -> list[GeneratedImage]
      error(status, body, channel, retry_after)    -> GatewayError

Jobs are the gateway's own, validated requests (``VideoJob``, ``ImageJob``); adapters map them to
the vendor's fields. A ``TaskUpdate`` uses the gateway's task states:
queued | running | succeeded | failed | cancelled | expired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from tokenhub.errors import GatewayError
from tokenhub.providers.base import UpstreamRequest
from tokenhub.upstream import Channel

TASK_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "expired"})


@dataclass(frozen=True)
class MediaInput:
    """An input of a video job: ``kind`` image | video | audio, a URL (http(s) or data:), a role."""

    kind: str
    url: str
    role: str  # first_frame | last_frame | reference_image | reference_video | reference_audio


@dataclass(frozen=True)
class VideoJob:
    prompt: str
    duration: int  # seconds
    resolution: str  # 480p | 720p | 1080p
    aspect_ratio: str  # 16:9, 9:16, 1:1, ...
    mode: str | None = None  # std | pro (Kling)
    generate_audio: bool = False
    inputs: tuple[MediaInput, ...] = ()
    negative_prompt: str | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "duration": self.duration,
            "resolution": self.resolution,
            "aspect_ratio": self.aspect_ratio,
            "mode": self.mode,
            "generate_audio": self.generate_audio,
            "inputs": [{"kind": i.kind, "url": i.url, "role": i.role} for i in self.inputs],
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "VideoJob":
        return cls(
            prompt=raw["prompt"],
            duration=int(raw["duration"]),
            resolution=raw["resolution"],
            aspect_ratio=raw["aspect_ratio"],
            mode=raw.get("mode"),
            generate_audio=bool(raw.get("generate_audio")),
            inputs=tuple(MediaInput(i["kind"], i["url"], i["role"]) for i in raw.get("inputs") or ()),
            negative_prompt=raw.get("negative_prompt"),
            seed=raw.get("seed"),
        )


@dataclass(frozen=True)
class TaskUpdate:
    state: str  # one of TASK_STATES
    video_url: str | None = None
    duration: Decimal | None = None  # seconds the upstream reports it generated
    error: dict[str, Any] | None = None  # {"code", "message"} for failed / cancelled / expired
    raw_status: str | None = None  # the vendor's own word, for the record


@dataclass(frozen=True)
class ImageJob:
    prompt: str
    n: int = 1
    size: str | None = None
    response_format: str = "url"  # url | b64_json
    images: tuple[str, ...] = ()  # reference images (URLs or data URLs)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GeneratedImage:
    url: str | None = None
    b64_json: str | None = None
    size: str | None = None


def seconds(raw: Any) -> Decimal | None:
    """A duration the upstream reported (number or numeric text) as exact seconds; None if unusable."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


class VideoAdapter(Protocol):
    protocol: str

    def build_submit(self, job: VideoJob, upstream_model: str, channel: Channel) -> UpstreamRequest: ...

    def parse_submit(self, body: bytes) -> str: ...

    def build_poll(
        self, upstream_task_id: str, job: VideoJob, channel: Channel, upstream_model: str | None = None
    ) -> UpstreamRequest: ...

    def parse_poll(self, body: bytes) -> TaskUpdate: ...

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError: ...


class ImageAdapter(Protocol):
    protocol: str

    def build_request(self, job: ImageJob, upstream_model: str, channel: Channel) -> list[UpstreamRequest]: ...

    def parse_response(self, body: bytes) -> list[GeneratedImage]: ...

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError: ...
