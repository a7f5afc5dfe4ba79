"""Alibaba Cloud Model Studio (DashScope) Wan video: asynchronous video-synthesis tasks.

Pure translation, no I/O (see base.py). ``channel.base_url`` includes ``/api/v1``, e.g.
``https://dashscope-intl.aliyuncs.com/api/v1``. What the relay must know:

* **Submit**: ``POST {base}/services/aigc/video-generation/video-synthesis`` with
  ``Authorization: Bearer <key>`` and ``X-DashScope-Async: enable`` (mandatory: the Wan video models
  have no synchronous form). Body ``{model, input: {prompt, negative_prompt?, img_url?},
  parameters: {size | resolution, duration, seed?, prompt_extend: false, audio?}}``.
* **Text or image.** A model whose name says ``i2v`` needs the job's first_frame image (``img_url``; an
  http(s) or ``data:`` URL, both accepted by DashScope) and takes ``resolution`` ("480P", "720P",
  "1080P"); the output follows the image's aspect ratio, so the job's ``aspect_ratio`` is not sent. A
  ``t2v`` model takes ``size`` "W*H" from the job's resolution and aspect ratio (the table below, as
  Model Studio documents it). Model Studio names its models in pairs, so a job with a first frame sent
  to a ``t2v`` model goes to its ``i2v`` sibling (``wan2.2-t2v-plus`` → ``wan2.2-i2v-plus``): one
  catalog model can serve both. last_frame and reference_* roles are not on this endpoint (the
  first-and-last-frame models use another one): ``InvalidRequest``.
* **prompt_extend is sent false**: DashScope otherwise rewrites the prompt with an LLM; the gateway
  generates what the client asked for. ``audio: true`` is sent only when the job asks for audio (the
  wan2.5+ toggle; wan2.2 is silent and the gateway's model validation should refuse audio for it).
* **Poll**: ``GET {base}/tasks/{task_id}`` — ``body=b""``: the relay sends a GET when the body is empty.
* **States**: PENDING → queued, RUNNING (and SUSPENDED) → running, SUCCEEDED → succeeded
  (``output.video_url``; ``usage.video_duration``, or ``usage.duration`` as some models spell it),
  FAILED → failed (``output.code`` / ``output.message``), CANCELED → cancelled, UNKNOWN → expired:
  DashScope answers UNKNOWN (HTTP 200) for a task it no longer knows, e.g. more than 24 hours after
  it was created. Result URLs are signed OSS URLs valid for about 24 hours.
* **Errors**: ``{request_id, code, message}``; the message goes through ``upstream_error``.
  ``Arrearage`` (HTTP 400: the account is overdue) is the operator's problem, so it takes the
  credentials path (403), as do the ``AccessDenied*`` codes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

from tokenhub.errors import GatewayError, InvalidRequest, UpstreamError
from tokenhub.providers.base import UpstreamRequest, upstream_error
from tokenhub.providers.media.base import TaskUpdate, VideoJob, seconds
from tokenhub.upstream import Channel

SUBMIT_PATH = "/services/aigc/video-generation/video-synthesis"

# (resolution, aspect ratio) -> size for the text-to-video models (Model Studio's size tiers).
SIZES: dict[str, dict[str, str]] = {
    "480p": {"16:9": "832*480", "9:16": "480*832", "1:1": "624*624"},
    "720p": {"16:9": "1280*720", "9:16": "720*1280", "1:1": "960*960", "4:3": "1088*832", "3:4": "832*1088"},
    "1080p": {"16:9": "1920*1080", "9:16": "1080*1920", "1:1": "1440*1440", "4:3": "1632*1248", "3:4": "1248*1632"},
}
STATES = {
    "PENDING": "queued",
    "RUNNING": "running",
    "SUSPENDED": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "CANCELED": "cancelled",
    "UNKNOWN": "expired",
}
OPERATOR_CODES = frozenset({"Arrearage", "AccessDenied", "AccessDenied.Unpurchased"})


def is_i2v(model: str) -> bool:
    return "i2v" in model


def model_for(job: VideoJob, upstream_model: str) -> str:
    """The model to call: a t2v model's i2v sibling when the job has a first frame."""
    has_first = any(i.kind == "image" and i.role == "first_frame" for i in job.inputs)
    if has_first and "t2v" in upstream_model:
        return upstream_model.replace("t2v", "i2v", 1)
    return upstream_model


def size_for(resolution: str, aspect_ratio: str) -> str:
    sizes = SIZES.get(resolution.lower())
    if sizes is None:
        raise InvalidRequest(f"resolution must be one of {', '.join(SIZES)}; got {resolution!r}", param="resolution")
    size = sizes.get(aspect_ratio)
    if size is None:
        raise InvalidRequest(
            f"aspect_ratio at {resolution} must be one of {', '.join(sizes)}; got {aspect_ratio!r}", param="aspect_ratio"
        )
    return size


def build_body(job: VideoJob, upstream_model: str) -> dict[str, Any]:
    model = model_for(job, upstream_model)
    input_: dict[str, Any] = {"prompt": job.prompt}
    if job.negative_prompt:
        input_["negative_prompt"] = job.negative_prompt
    for item in job.inputs:
        if item.kind == "image" and item.role == "first_frame" and is_i2v(model):
            input_["img_url"] = item.url
        else:
            raise InvalidRequest(
                f"content: a {item.kind} with role {item.role} is not supported by this model", param="content"
            )
    parameters: dict[str, Any] = {}
    if is_i2v(model):
        if "img_url" not in input_:
            raise InvalidRequest("content: this model needs a first_frame image", param="content")
        parameters["resolution"] = job.resolution.upper()
    else:
        parameters["size"] = size_for(job.resolution, job.aspect_ratio)
    parameters["duration"] = job.duration
    parameters["prompt_extend"] = False
    if job.seed is not None:
        parameters["seed"] = job.seed
    if job.generate_audio:
        parameters["audio"] = True
    return {"model": model, "input": input_, "parameters": parameters}


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("the upstream provider sent a response that is not JSON", code="upstream_bad_response") from None
    if not isinstance(parsed, dict):
        raise UpstreamError("the upstream provider sent a response that is not an object", code="upstream_bad_response")
    return parsed


def _output(body: bytes) -> dict[str, Any]:
    output = _json(body).get("output")
    if not isinstance(output, dict):
        raise UpstreamError("the upstream provider sent a task response without output", code="upstream_bad_response")
    return output


def error_detail(body: bytes) -> str:
    """DashScope's error message (``{request_id, code, message}``), or the start of the body."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str) and parsed["message"]:
        code = parsed.get("code")
        return f"{parsed['message']} ({code})" if isinstance(code, str) and code else parsed["message"]
    return body[:300].decode("utf-8", "replace").strip() or "no details"


def error_code(body: bytes) -> str | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) else None


def read_duration(usage: Any) -> Decimal | None:
    if not isinstance(usage, dict):
        return None
    return seconds(usage.get("video_duration", usage.get("duration")))


def parse_poll(body: bytes) -> TaskUpdate:
    parsed = _json(body)
    output = parsed.get("output")
    if not isinstance(output, dict):
        raise UpstreamError("the upstream provider sent a task response without output", code="upstream_bad_response")
    raw = output.get("task_status")
    state = STATES.get(raw) if isinstance(raw, str) else None
    if state is None:
        raise UpstreamError(f"the upstream provider sent an unknown task status {raw!r}", code="upstream_bad_response")
    if state == "succeeded":
        url = output.get("video_url")
        if not isinstance(url, str) or not url:
            raise UpstreamError("the upstream provider reported success without a video", code="upstream_bad_response")
        return TaskUpdate(state, video_url=url, duration=read_duration(parsed.get("usage")), raw_status=raw)
    if state == "failed":
        code, message = output.get("code"), output.get("message")
        error = {
            "code": code if isinstance(code, str) and code else "upstream_task_failed",
            "message": message if isinstance(message, str) and message else "The upstream provider failed the task.",
        }
        return TaskUpdate(state, error=error, raw_status=raw)
    if state == "cancelled":
        error = {"code": "upstream_task_cancelled", "message": "The upstream provider cancelled the task."}
        return TaskUpdate(state, error=error, raw_status=raw)
    if state == "expired":
        error = {
            "code": "upstream_task_expired",
            "message": "The upstream provider no longer knows the task (DashScope forgets tasks after 24 hours).",
        }
        return TaskUpdate(state, error=error, raw_status=raw)
    return TaskUpdate(state, raw_status=raw)


class DashScopeVideoAdapter:

    def build_submit(self, job: VideoJob, upstream_model: str, channel: Channel) -> UpstreamRequest:
        return UpstreamRequest(
            url=f"{channel.base_url}{SUBMIT_PATH}",
            headers={
                "Authorization": f"Bearer {channel.api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "X-DashScope-Async": "enable",
            },
            body=orjson.dumps(build_body(job, upstream_model)),
        )

    def parse_submit(self, body: bytes) -> str:
        task_id = _output(body).get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamError("the upstream provider accepted the task without a task id", code="upstream_bad_response")
        return task_id

    def build_poll(
        self, upstream_task_id: str, job: VideoJob, channel: Channel, upstream_model: str | None = None
    ) -> UpstreamRequest:
        """A GET (empty body) on ``{base}/tasks/{id}`` (``upstream_model`` is accepted and not needed)."""
        return UpstreamRequest(
            url=f"{channel.base_url}/tasks/{quote(upstream_task_id, safe='')}",
            headers={"Authorization": f"Bearer {channel.api_key}", "Accept": "application/json"},
            body=b"",
        )

    def parse_poll(self, body: bytes) -> TaskUpdate:
        return parse_poll(body)

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
        if error_code(body) in OPERATOR_CODES:
            status = 403
        return upstream_error(status, error_detail(body), channel, retry_after)
