"""Volcengine Ark / BytePlus ModelArk media: Seedance video tasks and Seedream images.

Pure translation, no I/O (see ``base.py``). ``channel.base_url`` ends in ``/api/v3``
(``https://ark.cn-beijing.volces.com/api/v3``, ``https://ark.ap-southeast.bytepluses.com/api/v3``);
auth is ``Authorization: Bearer {api_key}``.

Video (``ArkVideoAdapter``)
  submit  ``POST {base}/contents/generations/tasks``; the job's settings travel as Ark's documented
          top-level JSON fields (``resolution``, ``ratio``, ``duration``, ``generate_audio``,
          ``seed``, ``watermark: false``), never as legacy ``--rs 720p`` prompt commands. ``content``
          is the text item (omitted for an empty prompt: an image-only job), then the media items
          ordered first_frame, last_frame, reference_image, reference_video, reference_audio (Ark
          wants the first frame before the last). Images are ``image_url`` items, reference videos
          ``video_url``, reference audio ``audio_url``, each with its ``role``.
          Not sent: ``mode`` (Kling's), ``negative_prompt`` (Ark has none — the gateway's validation
          should refuse it for Seedance models; here it is dropped), the client's ``callback_url``
          (Ark's callbacks are unsigned; the gateway polls and delivers its own signed callback),
          ``execution_expires_after`` (Ark's 48 h default; the gateway's own timeout sweep is
          shorter), ``generate_audio: false`` to Seedance 1.0 models (they have no audio; Ark's
          behaviour on receiving the field is undocumented). ``generate_audio`` is otherwise always
          sent, because Ark's default is *true* on 1.5/2.x and the gateway's is false.
  poll    ``GET {base}/contents/generations/tasks/{id}``. **The UpstreamRequest of a poll has an
          empty body (``b""``): the relay must send it as a GET, with no Content-Type.**
  states  queued, running → the same; succeeded → ``content.video_url`` and the task's reported
          ``duration`` (seconds, Decimal; from ``frames / framespersecond`` if a task reports frames
          instead; None if neither is usable, in which case the relay charges what it held);
          failed → ``error`` {code, message} as Ark gives it; cancelled, expired → the same state
          with a gateway error object (Ark's own, if it sent one). A succeeded task without a
          ``video_url`` is answered as *failed* (``upstream_missing_video``): nothing to deliver,
          so nothing to charge. An unknown status or a body that is not a task raises
          ``UpstreamError`` (``upstream_bad_response``) — never a silent "running".
  errors  ``upstream_error`` on Ark's ``error.message``; a 404 whose code is ``ResourceNotFound``
          (a poll for a task Ark no longer knows: records are kept 7 days, deleted tasks vanish)
          is ``upstream_task_not_found`` (502) rather than "unknown model".

Images (``ArkImageAdapter``)
  ``POST {base}/images/generations``. Ark has no ``n``. We send **n identical requests**, each
  with ``sequential_image_generation: "disabled"`` (exactly one image each), rather than one group
  generation (``"auto"`` + ``max_images: n``): the group mode lets the model decide how many images
  to draw (*up to* max_images, fewer when references count against its 15-image budget), so it can
  neither promise the client its ``n`` nor the ledger a count before the call. n requests cost n
  round trips (the relay can run them concurrently) but each either yields its image or fails on
  its own; the relay bills the images actually returned. Seedream 3.0 / SeedEdit 3.0 have no group
  generation, so the field is not sent to them.
  Body: ``model``, ``prompt``, ``size`` (the job's, else the model's default: ``1024x1024`` for
  3.0 models, ``2048x2048`` for 4.x/5.x — see ``default_image_size``), ``response_format``,
  ``image`` (one reference as a string, several as an array) when the job has references,
  ``watermark: false`` (Ark's default is true), and the Ark fields ``seed``, ``output_format``,
  ``guidance_scale`` when ``job.extra`` carries them. The response's ``data`` items become
  ``GeneratedImage``s (url or b64_json, and Ark's ``size``); items carrying an ``error`` are
  skipped, so an empty list means the call produced no image.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import orjson

from tokenhub.errors import GatewayError, InvalidRequest, UpstreamError
from tokenhub.providers.base import UpstreamRequest, upstream_error
from tokenhub.providers.media.base import GeneratedImage, ImageJob, MediaInput, TaskUpdate, VideoJob
from tokenhub.upstream import Channel

TASKS_PATH = "/contents/generations/tasks"
IMAGES_PATH = "/images/generations"

# gateway role -> (the MediaInput kind it takes, Ark's content item type); the order is Ark's
ROLE_ITEMS: dict[str, tuple[str, str]] = {
    "first_frame": ("image", "image_url"),
    "last_frame": ("image", "image_url"),
    "reference_image": ("image", "image_url"),
    "reference_video": ("video", "video_url"),
    "reference_audio": ("audio", "audio_url"),
}
ROLE_ORDER = {role: rank for rank, role in enumerate(ROLE_ITEMS)}

ARK_TASK_STATES = {"queued": "queued", "running": "running", "succeeded": "succeeded", "failed": "failed",
                   "cancelled": "cancelled", "expired": "expired"}
CANCELLED_ERROR = {"code": "upstream_task_cancelled", "message": "The upstream provider cancelled the task."}
EXPIRED_ERROR = {"code": "upstream_task_expired",
                 "message": "The upstream provider expired the task before it finished."}
FAILED_ERROR = {"code": "upstream_task_failed", "message": "The upstream provider reported the task as failed."}
MISSING_VIDEO_ERROR = {"code": "upstream_missing_video",
                       "message": "The upstream provider reported success but returned no video."}

IMAGE_EXTRA_FIELDS = ("seed", "output_format", "guidance_scale")  # Ark fields a job may carry in ``extra``


def _headers(channel: Channel, *, json_body: bool) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {channel.api_key}", "Accept": "application/json"}
    if json_body:
        headers["Content-Type"] = "application/json"
    return headers


def _bad_response(what: str) -> UpstreamError:
    return UpstreamError(f"The upstream provider sent a malformed {what}.", code="upstream_bad_response")


def _load_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad_response(what) from None
    if not isinstance(parsed, dict):
        raise _bad_response(what)
    return parsed


def _ark_error(body: bytes) -> tuple[str | None, str]:
    """Ark's ``error.code`` and ``error.message`` (or the start of whatever the body is)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, body[:300].decode("utf-8", "replace").strip() or "no details"
    err = parsed.get("error", parsed) if isinstance(parsed, dict) else None
    if isinstance(err, dict):
        code = err.get("code") if isinstance(err.get("code"), str) else None
        message = err.get("message")
        return code, message if isinstance(message, str) and message else (code or "no details")
    if isinstance(err, str):
        return None, err
    return None, "no details"


def error_detail(body: bytes) -> str:
    """Ark's own error message (``error.message``)."""
    return _ark_error(body)[1]


def ark_error(status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
    code, message = _ark_error(body)
    if status == 404 and code == "ResourceNotFound":
        return UpstreamError(f"The upstream provider does not know this task: {channel.redact(message)[:1000]}",
                             code="upstream_task_not_found")
    return upstream_error(status, message, channel, retry_after)


# --------------------------------------------------------------------------- video


def _media_item(media: MediaInput) -> dict[str, Any]:
    spec = ROLE_ITEMS.get(media.role)
    if spec is None or spec[0] != media.kind:
        # the gateway validates jobs first; an inconsistent one must not reach Ark half-translated
        raise InvalidRequest(f"A {media.kind} input cannot have the role {media.role} for this model.",
                             param="content")
    item_type = spec[1]
    return {"type": item_type, item_type: {"url": media.url}, "role": media.role}


def _has_audio_field(upstream_model: str) -> bool:
    """Seedance 1.0 models generate no audio (the field is not documented for them)."""
    return "seedance-1-0" not in upstream_model


def video_body(job: VideoJob, upstream_model: str) -> dict[str, Any]:
    """The Ark create-task body for a job."""
    content: list[dict[str, Any]] = []
    if job.prompt.strip():
        content.append({"type": "text", "text": job.prompt})
    media = sorted(job.inputs, key=lambda m: ROLE_ORDER.get(m.role, len(ROLE_ORDER)))
    content.extend(_media_item(m) for m in media)
    body: dict[str, Any] = {
        "model": upstream_model,
        "content": content,
        "resolution": job.resolution,
        "ratio": job.aspect_ratio,
        "duration": job.duration,
    }
    if job.generate_audio or _has_audio_field(upstream_model):
        body["generate_audio"] = job.generate_audio
    if job.seed is not None:
        body["seed"] = job.seed
    body["watermark"] = False
    return body


def _duration(task: dict[str, Any]) -> Decimal | None:
    duration = _positive_number(task.get("duration"))
    if duration is not None:
        return duration
    frames = _positive_number(task.get("frames"))
    fps = _positive_number(task.get("framespersecond"))
    if frames is not None and fps is not None:
        return frames / fps
    return None


def _positive_number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number > 0 else None


def _task_error(raw: Any, default: dict[str, str]) -> dict[str, str]:
    if not isinstance(raw, dict):
        return dict(default)
    code = raw.get("code")
    message = raw.get("message")
    return {
        "code": code if isinstance(code, str) and code else default["code"],
        "message": message[:1000] if isinstance(message, str) and message else default["message"],
    }


def task_update(task: dict[str, Any]) -> TaskUpdate:
    """A TaskUpdate for an Ark task object."""
    raw_status = task.get("status")
    state = ARK_TASK_STATES.get(raw_status) if isinstance(raw_status, str) else None
    if state is None:
        raise UpstreamError(f"The upstream provider reported an unknown task status: {str(raw_status)[:50]!r}.",
                            code="upstream_bad_response")
    if state == "succeeded":
        content = task.get("content")
        url = content.get("video_url") if isinstance(content, dict) else None
        if not isinstance(url, str) or not url:
            return TaskUpdate("failed", error=dict(MISSING_VIDEO_ERROR), raw_status=raw_status)
        return TaskUpdate("succeeded", video_url=url, duration=_duration(task), raw_status=raw_status)
    if state == "failed":
        return TaskUpdate("failed", error=_task_error(task.get("error"), FAILED_ERROR), raw_status=raw_status)
    if state == "cancelled":
        return TaskUpdate("cancelled", error=_task_error(task.get("error"), CANCELLED_ERROR), raw_status=raw_status)
    if state == "expired":
        return TaskUpdate("expired", error=_task_error(task.get("error"), EXPIRED_ERROR), raw_status=raw_status)
    return TaskUpdate(state, raw_status=raw_status)


class ArkVideoAdapter:
    """Seedance through Ark's content-generation tasks."""


    def build_submit(self, job: VideoJob, upstream_model: str, channel: Channel) -> UpstreamRequest:
        return UpstreamRequest(
            url=f"{channel.base_url}{TASKS_PATH}",
            headers=_headers(channel, json_body=True),
            body=orjson.dumps(video_body(job, upstream_model)),
        )

    def parse_submit(self, body: bytes) -> str:
        task_id = _load_object(body, "task creation answer").get("id")
        if not isinstance(task_id, str) or not task_id:
            raise _bad_response("task creation answer")
        return task_id

    def build_poll(
        self, upstream_task_id: str, job: VideoJob, channel: Channel, upstream_model: str | None = None
    ) -> UpstreamRequest:
        """A GET: the body is empty."""
        return UpstreamRequest(
            url=f"{channel.base_url}{TASKS_PATH}/{quote(upstream_task_id, safe='')}",
            headers=_headers(channel, json_body=False),
            body=b"",
        )

    def parse_poll(self, body: bytes) -> TaskUpdate:
        return task_update(_load_object(body, "task"))

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
        return ark_error(status, body, channel, retry_after)


# --------------------------------------------------------------------------- images


def _legacy_image_model(upstream_model: str) -> bool:
    """Seedream 3.0 t2i and SeedEdit 3.0 i2i: sizes 512–2048, no group generation."""
    return "seedream-3" in upstream_model or "seededit-3" in upstream_model


def default_image_size(upstream_model: str) -> str:
    """The size Ark generates when a request names none (for pricing by size)."""
    return "1024x1024" if _legacy_image_model(upstream_model) else "2048x2048"


def image_body(job: ImageJob, upstream_model: str) -> dict[str, Any]:
    """The body of one Ark image request (one image)."""
    body: dict[str, Any] = {
        "model": upstream_model,
        "prompt": job.prompt,
        "size": job.size or default_image_size(upstream_model),
        "response_format": job.response_format,
    }
    if job.images:
        body["image"] = job.images[0] if len(job.images) == 1 else list(job.images)
    if not _legacy_image_model(upstream_model):
        body["sequential_image_generation"] = "disabled"
    body["watermark"] = False
    for name in IMAGE_EXTRA_FIELDS:
        if job.extra.get(name) is not None:
            body[name] = job.extra[name]
    return body


class ArkImageAdapter:
    """Seedream (and SeedEdit) through Ark's synchronous image generation: n requests for n images."""


    def build_request(self, job: ImageJob, upstream_model: str, channel: Channel) -> list[UpstreamRequest]:
        request = UpstreamRequest(
            url=f"{channel.base_url}{IMAGES_PATH}",
            headers=_headers(channel, json_body=True),
            body=orjson.dumps(image_body(job, upstream_model)),
        )
        return [request] * max(1, job.n)

    def parse_response(self, body: bytes) -> list[GeneratedImage]:
        data = _load_object(body, "image generation answer").get("data")
        if not isinstance(data, list):
            raise _bad_response("image generation answer")
        images: list[GeneratedImage] = []
        for item in data:
            if not isinstance(item, dict) or item.get("error") is not None:
                continue
            url, b64 = item.get("url"), item.get("b64_json")
            size = item.get("size") if isinstance(item.get("size"), str) else None
            if isinstance(url, str) and url:
                images.append(GeneratedImage(url=url, size=size))
            elif isinstance(b64, str) and b64:
                images.append(GeneratedImage(b64_json=b64, size=size))
        return images

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
        return ark_error(status, body, channel, retry_after)
