"""Kling AI video (api-singapore.klingai.com): asynchronous tasks in Kling's envelope.

Pure translation, no I/O (see base.py). What the relay must know:

* **Credentials.** ``channel.api_key`` is ``"ACCESS_KEY:SECRET_KEY"`` (split at the first colon).
  Every request carries ``Authorization: Bearer <JWT>``: HS256 with the secret key, header
  ``{"alg": "HS256", "typ": "JWT"}``, claims ``iss`` = access key, ``exp`` = now + 1800,
  ``nbf`` = now - 5. A fresh token is minted per request; build the request right before sending it.
* **Families.** Kling has one endpoint family per kind of task, and a task is only visible on the
  family path that created it:

  - ``omni-video`` for the omni models (``kling-video-o1``, ``kling-v3-omni``, any ``*-omni``): images
    go in ``image_list`` (first_frame → ``type`` first_frame, last_frame → end_frame, reference images
    untyped), reference videos in ``video_list``; no ``negative_prompt`` field (Kling's omni prompt
    carries both); ``aspect_ratio`` only without a first frame (the video follows the frame);
  - ``image2video`` when the job has a first_frame or last_frame image (``image`` / ``image_tail``;
    no ``aspect_ratio``: the output follows the image);
  - ``text2video`` otherwise.

  ``build_poll`` derives the family the same way. The job alone cannot tell an omni model, so the
  relay must pass ``upstream_model=`` (a keyword beyond the VideoAdapter contract) when it polls a
  task submitted to an omni model; without it the task is polled on text2video/image2video.
* **Polls are GETs**: a poll request has ``body=b""`` and the relay sends a GET when the body is empty.
* **Fields.** ``duration`` is sent as a string ("5"); ``mode`` is the job's or "std"; ``sound: "on"``
  only when the job asks for audio (omitted otherwise: older models do not know it). Images given as
  ``data:`` URLs are sent as raw base64 (Kling rejects the prefix). Roles the family cannot take
  (reference_* outside omni, audio anywhere) raise ``InvalidRequest``; the gateway's own validation
  should have refused them first.
* **Envelope.** Every answer is ``{code, message, request_id, data}``; ``code`` 0 is success. A non-zero
  code in a 200 answer is raised as the error its code stands for.
* **Errors.** Codes 1000–1004 (auth) mean Kling refused *our* credentials (401 path: operator's
  problem, 502 to the client); 1100–1102 (account exception, arrears, resource pack used up) and 1103/1304
  (no permission, IP whitelist) are the operator's too (403 path); 1302/1303 are rate/concurrency
  limits (429); 1200/1201/1300/1301 the request or its content (400); 1202/1203 unknown resource
  (404); 5001 maintenance (503); other 5xxx the upstream failing.
* **Results.** ``succeed`` carries ``task_result.videos[0].url`` and ``duration`` (a string of seconds,
  read as a Decimal for per-second settlement; None when absent or unreadable: settle on the
  requested duration then). Kling keeps results for 30 days.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

from tokenhub.errors import GatewayError, InvalidRequest, UpstreamError
from tokenhub.providers.base import UpstreamRequest, upstream_error
from tokenhub.providers.media.base import MediaInput, TaskUpdate, VideoJob, seconds
from tokenhub.upstream import Channel

TOKEN_LIFETIME = 1800  # seconds, as in Kling's sample
NOT_BEFORE_SLACK = 5  # seconds of clock skew tolerated by the token's nbf
OMNI_MODELS = frozenset({"kling-video-o1", "kling-v3-omni"})
STATES = {"submitted": "queued", "processing": "running", "succeed": "succeeded", "failed": "failed"}

# Kling business code -> the HTTP status whose meaning it has for us.
AUTH_CODES = range(1000, 1005)
ACCOUNT_CODES = frozenset({1100, 1101, 1102, 1103, 1304})
RATE_CODES = frozenset({1302, 1303})
BAD_REQUEST_CODES = frozenset({1200, 1201, 1300, 1301})
NOT_FOUND_CODES = frozenset({1202, 1203})
SERVER_CODES = {5000: 500, 5001: 503, 5002: 504}

_NO_CHANNEL = Channel(id=0, name="", provider="", protocol="", base_url="", api_key="", priority=0, weight=0)  # nothing to redact


def is_omni(upstream_model: str | None) -> bool:
    return bool(upstream_model) and (upstream_model in OMNI_MODELS or str(upstream_model).endswith("-omni"))


def family_of(job: VideoJob, upstream_model: str | None = None) -> str:
    """The endpoint family a job goes to (and is polled on)."""
    if is_omni(upstream_model):
        return "omni-video"
    if any(i.kind == "image" and i.role in ("first_frame", "last_frame") for i in job.inputs):
        return "image2video"
    return "text2video"


def credentials(channel: Channel) -> tuple[str, str]:
    access, sep, secret = channel.api_key.partition(":")
    if not sep or not access.strip() or not secret.strip():
        raise UpstreamError(
            "The Kling channel's credential must be 'ACCESS_KEY:SECRET_KEY'; the operator must fix the channel.",
            code="upstream_auth_failed",
        )
    return access.strip(), secret.strip()


def make_token(access_key: str, secret_key: str, now: float) -> str:
    import jwt  # PyJWT loads with the first Kling call

    issued = int(now)
    claims = {"iss": access_key, "exp": issued + TOKEN_LIFETIME, "nbf": issued - NOT_BEFORE_SLACK}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)  # the key is Kling's to choose
        return jwt.encode(claims, secret_key, algorithm="HS256", headers={"alg": "HS256", "typ": "JWT"})


def raw_image(url: str) -> str:
    """Kling takes an http(s) URL or raw base64: strip a ``data:...;base64,`` prefix."""
    if url.startswith("data:"):
        _, _, data = url.partition(",")
        return data
    return url


def _unsupported(item: MediaInput, family: str) -> InvalidRequest:
    return InvalidRequest(
        f"content: a {item.kind} with role {item.role} is not supported by this model (Kling {family})",
        param="content",
    )


def build_body(job: VideoJob, upstream_model: str) -> tuple[str, dict[str, Any]]:
    family = family_of(job, upstream_model)
    body: dict[str, Any] = {"model_name": upstream_model, "prompt": job.prompt}
    if job.negative_prompt and family != "omni-video":
        body["negative_prompt"] = job.negative_prompt
    body["mode"] = job.mode or "std"
    first = next((i for i in job.inputs if i.kind == "image" and i.role == "first_frame"), None)
    if family == "text2video" or (family == "omni-video" and first is None):
        body["aspect_ratio"] = job.aspect_ratio
    body["duration"] = str(job.duration)
    if job.generate_audio:
        body["sound"] = "on"
    if family == "omni-video":
        images: list[dict[str, Any]] = []
        videos: list[dict[str, Any]] = []
        for item in job.inputs:
            if item.kind == "image" and item.role in ("first_frame", "last_frame"):
                kind = "first_frame" if item.role == "first_frame" else "end_frame"
                images.append({"image_url": raw_image(item.url), "type": kind})
            elif item.kind == "image" and item.role == "reference_image":
                images.append({"image_url": raw_image(item.url)})
            elif item.kind == "video" and item.role == "reference_video":
                videos.append({"video_url": item.url, "refer_type": "feature"})
            else:
                raise _unsupported(item, family)
        if images:
            body["image_list"] = images
        if videos:
            body["video_list"] = videos
    else:
        for item in job.inputs:
            if item.kind == "image" and item.role == "first_frame":
                body["image"] = raw_image(item.url)
            elif item.kind == "image" and item.role == "last_frame":
                body["image_tail"] = raw_image(item.url)
            else:
                raise _unsupported(item, family)
    return family, body


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError("the upstream provider sent a response that is not JSON", code="upstream_bad_response") from None
    if not isinstance(parsed, dict):
        raise UpstreamError("the upstream provider sent a response that is not a Kling envelope", code="upstream_bad_response")
    return parsed


def error_detail(body: bytes) -> str:
    """Kling's envelope message, with its business code (or the start of whatever the body is)."""
    code, message = _code_and_message(body)
    if message is None:
        return body[:300].decode("utf-8", "replace").strip() or "no details"
    return f"{message} (Kling code {code})" if code is not None else message


def _code_and_message(body: bytes) -> tuple[int | None, str | None]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    code = parsed.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    message = parsed.get("message")
    return code, message if isinstance(message, str) and message else ("no details" if code is not None else None)


def status_for(code: int | None, status: int) -> int:
    """The HTTP status whose meaning a Kling business code has for the gateway."""
    if code is None:
        return status
    if code in AUTH_CODES:
        return 401
    if code in ACCOUNT_CODES:
        return 403
    if code in RATE_CODES:
        return 429
    if code in BAD_REQUEST_CODES:
        return 400
    if code in NOT_FOUND_CODES:
        return 404
    if code in SERVER_CODES:
        return SERVER_CODES[code]
    return status


def kling_error(status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
    code, _ = _code_and_message(body)
    return upstream_error(status_for(code, status), error_detail(body), channel, retry_after)


def _data(body: bytes) -> dict[str, Any]:
    parsed = _envelope(body)
    code = parsed.get("code")
    if code != 0:
        # A failure inside a 200 answer: the relay has no channel here, so nothing to redact but the
        # vendor's own words (which never carry our key).
        raise kling_error(502, body, _NO_CHANNEL, None)
    data = parsed.get("data")
    if not isinstance(data, dict):
        raise UpstreamError("the upstream provider sent a Kling envelope without task data", code="upstream_bad_response")
    return data


def read_duration(video: dict[str, Any]) -> Decimal | None:
    return seconds(video.get("duration"))


def parse_poll(body: bytes) -> TaskUpdate:
    data = _data(body)
    raw = data.get("task_status")
    state = STATES.get(raw) if isinstance(raw, str) else None
    if state is None:
        raise UpstreamError(f"the upstream provider sent an unknown task status {raw!r}", code="upstream_bad_response")
    if state == "succeeded":
        result = data.get("task_result")
        videos = result.get("videos") if isinstance(result, dict) else None
        video = videos[0] if isinstance(videos, list) and videos and isinstance(videos[0], dict) else None
        if video is None or not isinstance(video.get("url"), str) or not video["url"]:
            raise UpstreamError("the upstream provider reported success without a video", code="upstream_bad_response")
        return TaskUpdate(state, video_url=video["url"], duration=read_duration(video), raw_status=raw)
    if state == "failed":
        message = data.get("task_status_msg")
        error = {
            "code": "upstream_task_failed",
            "message": message if isinstance(message, str) and message else "The upstream provider failed the task.",
        }
        return TaskUpdate(state, error=error, raw_status=raw)
    return TaskUpdate(state, raw_status=raw)


class KlingVideoAdapter:

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now

    def headers(self, channel: Channel, *, json_body: bool) -> dict[str, str]:
        access, secret = credentials(channel)
        headers = {"Authorization": f"Bearer {make_token(access, secret, self._now())}", "Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    def build_submit(self, job: VideoJob, upstream_model: str, channel: Channel) -> UpstreamRequest:
        family, body = build_body(job, upstream_model)
        return UpstreamRequest(
            url=f"{channel.base_url}/v1/videos/{family}",
            headers=self.headers(channel, json_body=True),
            body=orjson.dumps(body),
        )

    def parse_submit(self, body: bytes) -> str:
        task_id = _data(body).get("task_id")
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamError("the upstream provider accepted the task without a task id", code="upstream_bad_response")
        return task_id

    def build_poll(
        self, upstream_task_id: str, job: VideoJob, channel: Channel, upstream_model: str | None = None
    ) -> UpstreamRequest:
        """A GET (empty body) on the family path that created the task; pass ``upstream_model`` for omni."""
        family = family_of(job, upstream_model)
        return UpstreamRequest(
            url=f"{channel.base_url}/v1/videos/{family}/{quote(upstream_task_id, safe='')}",
            headers=self.headers(channel, json_body=False),
            body=b"",
        )

    def parse_poll(self, body: bytes) -> TaskUpdate:
        return parse_poll(body)

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
        return kling_error(status, body, channel, retry_after)
