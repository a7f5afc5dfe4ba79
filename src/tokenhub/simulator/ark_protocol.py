"""A protocol-exact fake Volcengine Ark / BytePlus ModelArk media upstream (aiohttp).

Serves Seedance video-generation *tasks* and synchronous Seedream image generation, the
way the gateway's Ark adapters see them (base URL ``http://host:port/api/v3``).  Task
progress is driven by polls, so tests are deterministic and need no sleeping; only ids,
request ids and the ``created_at``/``updated_at``/``created`` clocks vary.

Usage::

    app = create_app(api_keys={"ark-test"})
    state: FakeArkState = app["state"]      # also app[STATE_KEY]

Routes
------
=============================================  ==============================================
``POST   /api/v3/contents/generations/tasks``  create a video task; answers ``{"id": "cgt-…"}``
``GET    /api/v3/contents/generations/tasks/{id}``  the task object (each GET is one *poll*)
``GET    /api/v3/contents/generations/tasks``  ``{"items": [task…], "total": N}``, newest first;
                                               ``page_num``/``page_size`` (1–500, default 1/10),
                                               ``filter.status``, ``filter.model``,
                                               ``filter.service_tier``, repeated
                                               ``filter.task_ids``; does not count as a poll
``DELETE /api/v3/contents/generations/tasks/{id}``  queued → ``cancelled``; succeeded / failed /
                                               expired → record deleted (later GET: 404);
                                               running / cancelled → 400; answers ``{}``
``POST   /api/v3/images/generations``          Seedream, synchronous
``GET    /videos/{id}.mp4``, ``/frames/{id}.png``, ``/images/{name}``  the media the URLs point
                                               at (a few bytes, no auth, like signed TOS URLs)
=============================================  ==============================================

Media URLs start with ``common.public_base`` (the origin, plus the prefix when mounted as a sub-app).
Every response carries ``x-request-id``; error messages end with ``Request id: <same id>``.
Other ``/api/v3`` paths answer a 404 ``NotFound`` error body (code unconfirmed).
``state.requests`` records every request (``RecordedRequest`` from the OpenAI fake: method,
path — with the query string — headers, parsed ``json`` or None, ``raw``), rejected ones too.
``state.tasks`` maps task id → ``ArkTask`` (status ``history``, ``polls``, the request, the
resolved settings; DELETEd records stay with ``deleted=True``).  ``state.callbacks`` lists
every callback delivery attempt (``CallbackAttempt``).

Auth: ``Authorization: Bearer <key>`` on every ``/api/v3`` route; missing or unknown → 401
``AuthenticationError``.  ``api_keys=None`` accepts anything.

Errors: ``{"error": {"code", "message", "param", "type"}}`` with Ark's codes and types
(400 ``BadRequest`` ``MissingParameter`` / ``InvalidParameter``, 401 ``Unauthorized``
``AuthenticationError``, 403 ``Forbidden`` ``AccountOverdueError``, 404 ``NotFound``
``InvalidEndpointOrModel.NotFound`` (unknown model) / ``ResourceNotFound`` (unknown task),
429 ``TooManyRequests`` ``RateLimitExceeded.EndpointRPMExceeded``, 500 ``InternalServerError``
``InternalServiceError``).  ``param`` names the offending field, else null.

Models
------
Known: the ``models`` list (default ``DEFAULT_MODELS``), any id starting with ``doubao-`` and
any ``ep-…`` endpoint id.  Others are a 404.  The video route needs a ``seedance`` model (or
``ep-``), the image route a ``seedream``/``seededit`` one, else 400 ``InvalidParameter``.

Video task request validation (all 400 ``InvalidParameter`` naming ``param``, except a missing
``model``/``content`` → ``MissingParameter``)
------------------------------------------------------------------------------------------
* ``content``: non-empty array; at most one ``{"type":"text","text":…}`` (required unless an
  image is given); ``{"type":"image_url","image_url":{"url":…},"role":…}`` with role
  ``first_frame`` (≤ 1), ``last_frame`` (≤ 1, needs a first frame) or ``reference_image``; a
  lone image without role is the first frame, several need roles; ``{"type":"video_url",
  "video_url":{"url":…},"role":"reference_video"}`` (≤ 3) and ``{"type":"audio_url",
  "audio_url":{"url":…},"role":"reference_audio"}`` (≤ 3) on 2.x only; frames and references
  don't mix; reference audio needs a reference image or video; ≤ 9 reference images (1.0: 4,
  1.5: none); ≤ 12 media items.
* ``duration``: integer, 2.x 4–15, 1.5 4–12, 1.0 2–12; ``-1`` (model decides, reported as 5)
  on 1.5/2.x; default 5.  ``resolution``: ``480p``/``720p``/``1080p`` (2.x fast: no 1080p);
  default 720p (1.0 pro: 1080p).  ``ratio``: 16:9 4:3 1:1 3:4 9:16 21:9 adaptive; default
  adaptive with a first frame, else 16:9; ``adaptive`` is reported as 16:9 once succeeded.
* ``generate_audio``, ``watermark``, ``camera_fixed``, ``return_last_frame``: booleans
  (``generate_audio`` defaults to true on 1.5/2.x and is absent from 1.0 tasks).
  ``seed``: integer in [-1, 2^32-1] (-1/absent → a value derived from the id).
  ``service_tier``: default|flex.  ``execution_expires_after``: 3600–259200 (default 172800).
  ``callback_url``: string.  Legacy ``--rs 720p``-style text commands are not interpreted.

Task lifecycle (poll-driven)
----------------------------
The create answers ``{"id"}``; the task is ``queued``.  The first ``queued`` GETs (default 1)
answer ``queued``, the next ``polls`` GETs (default 2) ``running``, every later one the terminal
status.  So by default: GET 1 queued, GET 2–3 running, GET 4 succeeded.  ``updated_at`` moves
with each status change.  A task object has ``id, model, status, error (null | {code, message}),
created_at, updated_at, seed, resolution, ratio, duration, framespersecond (24),
generate_audio (1.5/2.x), draft (false), service_tier, execution_expires_after, priority (0)``,
plus, only when succeeded, ``content: {"video_url"[, "last_frame_url"]}`` and
``usage: {"completion_tokens", "total_tokens"}`` with
``completion_tokens = total_tokens = W × H × (24 × duration + 1) // 1024`` (W×H from the output
pixel table of the model family and the reported resolution/ratio; the documented 2.0 example,
720p 16:9 5 s → 108900, fits this).

Callbacks: with ``#fake:callback`` and a ``callback_url``, the task object is POSTed (JSON) to
the URL on every status change, ``queued`` at create included, in order.  A delivery that does
not get a 2xx within ``state.callback_timeout`` (5 s) is retried 3 more times for succeeded /
failed (after ``state.callback_retry_delay``), never for other statuses.  Best effort.

Image generation
----------------
Request: ``model``, ``prompt`` (required), ``image`` (URL/data URI string or array, ≤ 14),
``size`` (``1K``/``2K``/``3K``/``4K`` → square, or ``WxH``: 4.5/5.x total pixels 2560×1440 –
4096×4096, others 1280×720 – 4096×4096, aspect 1/16–16; 3.0: each side 512–2048; default
``2048x2048``), ``response_format`` url|b64_json (default url), ``seed`` [-1, 2147483647],
``watermark`` bool, ``sequential_image_generation`` auto|disabled (default disabled),
``sequential_image_generation_options.max_images`` 1–15 (default 15), ``output_format``
jpeg|png.  ``stream: true`` is a 400 (not simulated).  There is no ``n``; it is ignored.
Response: ``{"model", "created", "data": [{"url"|"b64_json", "size": "WxH"}…], "usage":
{"generated_images", "output_tokens", "total_tokens"}}`` with ``output_tokens = total_tokens
= Σ round(W×H/256)`` over the images returned.  Group generation (auto) returns
``min(max_images, #fake:images or max_images, 15 - reference images)`` images; a failed group
item is ``{"error": {"code", "message"}}`` and is not counted.

Scenario directives
-------------------
Written in the prompt (the video task's text item, the image ``prompt``) as ``#fake:NAME`` or
``#fake:NAME=VALUE``; an unknown name or bad value is a 400 ``InvalidParameter``.

=====================  ======================================================
``queued=N``           N GETs answer ``queued`` before ``running`` (default 1)
``polls=N``            N GETs answer ``running`` before the terminal status (default 2)
``fail[=CODE]``        terminal ``failed`` with ``error`` {code (default
                       ``OutputVideoSensitiveContentDetected``), message}; images:
                       the request is a 400 with that code (default
                       ``OutputImageSensitiveContentDetected``)
``expire``             terminal ``expired`` (``error`` null)
``cancel_upstream``    ``cancelled`` straight after the queued phase
``hang``               stays ``running`` for ever
``duration=N``         the succeeded task reports duration N (usage follows it)
``status=CODE``        the create (or image) call answers HTTP CODE with Ark's error
                       body for it; no task is created
``poll_status=CODE``   the first ``poll_errors`` GETs answer HTTP CODE, then it
                       recovers (the failed GETs are not polls)
``poll_errors=N``      how many GETs ``poll_status`` fails (default 1)
``error_code=CODE``    the ``code`` of the ``status``/``poll_status`` error body
``retry_after=S``      a ``Retry-After: S`` header on those errors
``callback``           deliver callbacks to ``callback_url`` (see above)
``images=N``           group generation returns N images (capped as above)
``failed_images=N``    the last N images of the response are error items
=====================  ======================================================
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import string
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tokenhub.simulator.common import local_path, public_base
from tokenhub.simulator.openai_protocol import Headers, RecordedRequest

__all__ = [
    "STATE_KEY",
    "ArkTask",
    "CallbackAttempt",
    "FakeArkState",
    "Headers",
    "RecordedRequest",
    "Scenario",
    "create_app",
]

DEFAULT_MODELS = (
    "doubao-seedance-2-0-260128",
    "doubao-seedance-2-0-fast-260128",
    "doubao-seedance-1-5-pro-251215",
    "doubao-seedance-1-0-pro-250528",
    "dreamina-seedance-2-0-260128",
    "dreamina-seedance-2-0-fast-260128",
    "doubao-seedream-5-0-260128",
    "doubao-seedream-5-5-261028",
    "doubao-seedream-4-5-251128",
    "doubao-seedream-4-0-250828",
    "seedream-4-5-251128",
)
API_PREFIX = "/api/v3"
TASK_STATUSES = ("queued", "running", "cancelled", "succeeded", "failed", "expired")
TERMINAL_STATUSES = frozenset({"cancelled", "succeeded", "failed", "expired"})
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
FPS = 24
DEFAULT_EXPIRES_AFTER = 172_800
AUTO_DURATION = 5  # what the fake "model" picks for duration -1
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isomfake-ark-video"
FAKE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00fake-ark-image\xff\xd9"
_ID_CHARS = string.ascii_lowercase + string.digits

# W x H per resolution, in RATIOS order (Seedance 1.5 pro / 2.x table, and 1.0's)
PIXELS_V15 = {
    "480p": ((864, 496), (752, 560), (640, 640), (560, 752), (496, 864), (992, 432)),
    "720p": ((1280, 720), (1112, 834), (960, 960), (834, 1112), (720, 1280), (1470, 630)),
    "1080p": ((1920, 1080), (1664, 1248), (1440, 1440), (1248, 1664), (1080, 1920), (2206, 946)),
}
PIXELS_V10 = {
    "480p": ((864, 480), (736, 544), (640, 640), (544, 736), (480, 864), (960, 416)),
    "720p": ((1248, 704), (1120, 832), (960, 960), (832, 1120), (704, 1248), (1504, 640)),
    "1080p": ((1920, 1088), (1664, 1248), (1440, 1440), (1248, 1664), (1088, 1920), (2176, 928)),
}


# --------------------------------------------------------------------------- errors

ERROR_TYPES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}
STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", "One or more parameters specified in the request are not valid (simulated)."),
    401: ("AuthenticationError", "The API key or AK/SK in the request is missing or invalid."),
    403: ("AccountOverdueError", "The request failed because your account has an overdue balance."),
    404: ("InvalidEndpointOrModel.NotFound", "The model or endpoint does not exist or you do not have access to it."),
    429: ("RateLimitExceeded.EndpointRPMExceeded",
          "The Requests Per Minute (RPM) limit of the associated endpoint for your account has been exceeded."),
    500: ("InternalServiceError", "The service encountered an unexpected internal error."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}


class ArkError(Exception):
    """An error answered as Ark's JSON error body (the request id is appended to the message)."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    def response(self, request_id: str) -> web.Response:
        type_ = ERROR_TYPES.get(self.status, "InternalServerError" if self.status >= 500 else "BadRequest")
        body = {"error": {"code": self.code, "message": f"{self.message} Request id: {request_id}",
                          "param": self.param, "type": type_}}
        return web.Response(status=self.status, body=orjson.dumps(body), content_type="application/json",
                            headers=self.headers)


def invalid(param: str, detail: str) -> ArkError:
    return ArkError(400, "InvalidParameter", f"The parameter `{param}` specified in the request is not valid: {detail}.",
                    param=param)


def missing(param: str) -> ArkError:
    return ArkError(400, "MissingParameter",
                    f"The request failed because it is missing one or multiple required parameters: `{param}`.",
                    param=param)


def status_error(status: int, code: str | None = None, retry_after: str | None = None) -> ArkError:
    """The realistic Ark error for an HTTP status (``#fake:status`` / ``#fake:poll_status``)."""
    default_code, message = STATUS_ERRORS.get(status, ("InternalServiceError" if status >= 500 else "InvalidParameter",
                                                       f"Simulated HTTP {status} error."))
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return ArkError(status, code or default_code, message, headers=headers)


# --------------------------------------------------------------------------- directives

DIRECTIVE_RE = re.compile(r"#fake:([A-Za-z_]+)(?:=(\S+))?")
# kind: "flag" (no value), "int", "status" (HTTP 400-599), "str", "flag_or_str"
DIRECTIVES = {
    "queued": "int", "polls": "int", "fail": "flag_or_str", "expire": "flag", "cancel_upstream": "flag",
    "hang": "flag", "duration": "int", "status": "status", "poll_status": "status", "poll_errors": "int",
    "error_code": "str", "retry_after": "str", "callback": "flag", "images": "int", "failed_images": "int",
}


@dataclass
class Scenario:
    """The parsed ``#fake:`` directives of a request (see the module docstring)."""

    queued: int = 1
    polls: int = 2
    fail: str | None = None  # the failure code, "" for the default one
    expire: bool = False
    cancel_upstream: bool = False
    hang: bool = False
    duration: int | None = None
    status: int | None = None
    poll_status: int | None = None
    poll_errors: int = 1
    error_code: str | None = None
    retry_after: str | None = None
    callback: bool = False
    images: int | None = None
    failed_images: int = 0

    @classmethod
    def parse(cls, text: str, param: str) -> Scenario:
        scenario = cls()
        for name, value in DIRECTIVE_RE.findall(text):
            kind = DIRECTIVES.get(name)
            if kind is None:
                raise invalid(param, f"unknown fake directive '#fake:{name}'")
            setattr(scenario, name, _convert(name, kind, value, param))
        return scenario


def _convert(name: str, kind: str, value: str, param: str) -> Any:
    try:
        if kind == "flag":
            if value:
                raise ValueError
            return True
        if kind == "flag_or_str":
            return value
        if not value:
            raise ValueError
        if kind in ("int", "status"):
            number = int(value)
            if number < 0 or (kind == "status" and not 400 <= number <= 599):
                raise ValueError
            return number
        return value
    except ValueError:
        raise invalid(param, f"bad value for fake directive '#fake:{name}': {value!r}") from None


# --------------------------------------------------------------------------- state


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
            out["error"] = {"code": self.scenario.fail or "OutputVideoSensitiveContentDetected",
                            "message": "The request failed because the output video may contain sensitive "
                                       "information (simulated)."}
        if succeeded:
            content = {"video_url": f"{self.origin}/videos/{self.id}.mp4"}
            if self.return_last_frame:
                content["last_frame_url"] = f"{self.origin}/frames/{self.id}.png"
            out["content"] = content
            tokens = self.completion_tokens
            out["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        out.update({
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "seed": self.seed,
            "resolution": self.resolution,
            "ratio": self.reported_ratio if succeeded else self.ratio,
            "duration": self.reported_duration if succeeded else self.duration,
            "framespersecond": FPS,
        })
        if self.generate_audio is not None:
            out["generate_audio"] = self.generate_audio
        out.update({"draft": False, "service_tier": self.service_tier,
                    "execution_expires_after": self.execution_expires_after, "priority": 0})
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
REQUEST_ID_KEY = web.RequestKey("tokenhub_fake_ark_request_id", str)


def new_request_id() -> str:
    return f"02{int(time.time() * 1000)}{secrets.token_hex(16)}"


def new_task_id() -> str:
    return "cgt-" + time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + "".join(
        secrets.choice(_ID_CHARS) for _ in range(5))


# --------------------------------------------------------------------------- helpers


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_bool(body: dict[str, Any], name: str) -> None:
    if name in body and not isinstance(body[name], bool):
        raise invalid(name, "expected a boolean")


def check_model(state: FakeArkState, body: dict[str, Any], kinds: tuple[str, ...], what: str) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise missing("model")
    if not isinstance(model, str):
        raise invalid("model", "expected a string")
    if not (model in state.models or model.startswith(("doubao-", "ep-"))):
        raise ArkError(404, "InvalidEndpointOrModel.NotFound",
                       f"The model or endpoint {model} does not exist or you do not have access to it.",
                       param="model")
    if not model.startswith("ep-") and not any(kind in model for kind in kinds):
        raise invalid("model", f"the model {model} does not support {what}")
    return model


@dataclass(frozen=True)
class VideoCaps:
    durations: tuple[int, int]
    auto_duration: bool
    resolutions: tuple[str, ...]
    default_resolution: str
    audio: bool
    media_refs: bool  # reference videos / audios
    max_reference_images: int
    pixels: dict[str, tuple[tuple[int, int], ...]]


def video_caps(model: str) -> VideoCaps:
    if "seedance-1-0" in model:
        return VideoCaps((2, 12), False, ("480p", "720p", "1080p"), "1080p" if "pro" in model else "720p",
                         False, False, 4, PIXELS_V10)
    if "seedance-1-5" in model:
        return VideoCaps((4, 12), True, ("480p", "720p", "1080p"), "720p", True, False, 0, PIXELS_V15)
    resolutions = ("480p", "720p") if "fast" in model else ("480p", "720p", "1080p")
    return VideoCaps((4, 15), True, resolutions, "720p", True, True, 9, PIXELS_V15)


def media_url(item: dict[str, Any], key: str, index: int) -> None:
    obj = item.get(key)
    if not isinstance(obj, dict) or not isinstance(obj.get("url"), str) or not obj["url"]:
        raise invalid(f"content[{index}].{key}.url", "expected a non-empty URL or data URI")


def parse_content(content: Any, caps: VideoCaps) -> tuple[str, dict[str, int]]:
    """Validate the content array; answer the prompt text and the count of each role."""
    if content is None:
        raise missing("content")
    if not isinstance(content, list) or not content:
        raise invalid("content", "expected a non-empty array")
    texts: list[str] = []
    roles = {"first_frame": 0, "last_frame": 0, "reference_image": 0, "reference_video": 0, "reference_audio": 0}
    images: list[tuple[int, Any]] = []
    for i, item in enumerate(content):
        if not isinstance(item, dict):
            raise invalid(f"content[{i}]", "expected an object")
        type_ = item.get("type")
        if type_ == "text":
            if not isinstance(item.get("text"), str) or not item["text"].strip():
                raise invalid(f"content[{i}].text", "expected a non-empty string")
            texts.append(item["text"])
        elif type_ == "image_url":
            media_url(item, "image_url", i)
            images.append((i, item.get("role")))
        elif type_ in ("video_url", "audio_url"):
            media_url(item, type_, i)
            expected = "reference_video" if type_ == "video_url" else "reference_audio"
            role = item.get("role", expected)
            if role != expected:
                raise invalid(f"content[{i}].role", f"a {type_} item takes role {expected}")
            if not caps.media_refs:
                raise invalid(f"content[{i}].type", f"{type_} is not supported by this model")
            roles[expected] += 1
        else:
            raise invalid(f"content[{i}].type", "expected one of text, image_url, video_url, audio_url")
    if len(texts) > 1:
        raise invalid("content", "at most one text item is allowed")
    for i, role in images:
        if role is None:
            if len(images) > 1:
                raise invalid(f"content[{i}].role", "role is required when several images are given")
            role = "first_frame"
        if role not in ("first_frame", "last_frame", "reference_image"):
            raise invalid(f"content[{i}].role", "expected one of first_frame, last_frame, reference_image")
        roles[role] += 1
    if not texts and not images:
        raise invalid("content", "a text prompt or an image is required")
    frames = roles["first_frame"] + roles["last_frame"]
    references = roles["reference_image"] + roles["reference_video"] + roles["reference_audio"]
    if roles["first_frame"] > 1 or roles["last_frame"] > 1:
        raise invalid("content", "at most one first_frame and one last_frame image are allowed")
    if roles["last_frame"] and not roles["first_frame"]:
        raise invalid("content", "a last_frame image needs a first_frame image")
    if frames and references:
        raise invalid("content", "first/last frame images cannot be combined with reference media")
    if roles["reference_image"] > caps.max_reference_images:
        raise invalid("content", f"at most {caps.max_reference_images} reference_image items are allowed")
    if roles["reference_video"] > 3 or roles["reference_audio"] > 3:
        raise invalid("content", "at most 3 reference_video and 3 reference_audio items are allowed")
    if roles["reference_audio"] and not (roles["reference_image"] or roles["reference_video"]):
        raise invalid("content", "reference_audio needs at least one reference_image or reference_video")
    if frames + references > 12:
        raise invalid("content", "at most 12 media items are allowed")
    return (texts[0] if texts else ""), roles


def derived_seed(task_id: str) -> int:
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big") % 100_000


# --------------------------------------------------------------------------- callbacks


def schedule_callback(state: FakeArkState, task: ArkTask) -> None:
    if not (task.scenario.callback and task.callback_url):
        return
    previous = task.callback_chain
    delivery = asyncio.get_running_loop().create_task(
        deliver_callback(state, task.id, task.callback_url, task.body(), previous))
    task.callback_chain = delivery
    state.pending_callbacks.add(delivery)
    delivery.add_done_callback(state.pending_callbacks.discard)


async def deliver_callback(state: FakeArkState, task_id: str, url: str, body: dict[str, Any],
                           previous: asyncio.Task[None] | None) -> None:
    if previous is not None:  # keep one task's callbacks in status order
        await asyncio.gather(previous, return_exceptions=True)
    if state.session is None or state.session.closed:
        state.session = aiohttp.ClientSession()
    attempts = 4 if body["status"] in ("succeeded", "failed") else 1
    payload = orjson.dumps(body)
    for attempt in range(1, attempts + 1):
        http_status: int | None = None
        error: str | None = None
        try:
            async with state.session.post(url, data=payload, headers={"Content-Type": "application/json"},
                                          timeout=aiohttp.ClientTimeout(total=state.callback_timeout)) as resp:
                http_status = resp.status
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        state.callbacks.append(CallbackAttempt(task_id, body["status"], url, attempt, http_status, error, body))
        if http_status is not None and 200 <= http_status < 300:
            return
        if attempt < attempts:
            await asyncio.sleep(state.callback_retry_delay)


# --------------------------------------------------------------------------- request plumbing


async def read_json(request: web.Request, state: FakeArkState) -> Any:
    raw = await request.read()
    try:
        parsed = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        parsed = None
    state.requests.append(RecordedRequest(request.method, request.path_qs, Headers(request.headers.items()),
                                          parsed, raw))
    return parsed


def check_auth(request: web.Request, state: FakeArkState) -> None:
    if state.api_keys is None:
        return
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or key.strip() not in state.api_keys:
        raise ArkError(401, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid.")


async def begin(request: web.Request) -> tuple[FakeArkState, Any]:
    """Record the request, check auth, answer the state and the parsed body (None without one)."""
    state = request.app[STATE_KEY]
    body = await read_json(request, state)
    check_auth(request, state)
    return state, body


def json_response(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ArkError(400, "InvalidParameter", "The request body is not a valid JSON object.")
    return body


# --------------------------------------------------------------------------- video task handlers


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
        id=task_id, model=model, request=body, scenario=scenario, origin=public_base(request),
        created_at=now, updated_at=now, duration=duration, resolution=resolution, ratio=ratio,
        seed=seed if seed != -1 else derived_seed(task_id),
        generate_audio=body.get("generate_audio", True) if caps.audio else None,
        service_tier=service_tier, execution_expires_after=expires_after,
        return_last_frame=bool(body.get("return_last_frame", False)), callback_url=callback_url,
        pixels=caps.pixels, poll_errors_left=scenario.poll_errors if scenario.poll_status else 0,
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
    tasks = [t for t in reversed(state.tasks.values()) if not t.deleted
             and (status is None or t.status == status) and (model is None or t.model == model)
             and (tier is None or t.service_tier == tier) and (not ids or t.id in ids)]
    page = tasks[(page_num - 1) * page_size: page_num * page_size]
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


# --------------------------------------------------------------------------- images


SIZE_PRESETS = {"1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}
SIZE_RE = re.compile(r"^(\d+)x(\d+)$")


def image_size(model: str, size: Any) -> tuple[int, int]:
    if size is None:
        size = "2048x2048"
    if not isinstance(size, str):
        raise invalid("size", "expected a string")
    legacy = "seedream-3" in model or "seededit-3" in model
    if size.upper() in SIZE_PRESETS and not legacy:
        side = SIZE_PRESETS[size.upper()]
        return side, side
    match = SIZE_RE.match(size)
    if not match:
        raise invalid("size", "expected 1K, 2K, 3K, 4K or WIDTHxHEIGHT")
    width, height = int(match[1]), int(match[2])
    if legacy:
        if not (512 <= width <= 2048 and 512 <= height <= 2048):
            raise invalid("size", "width and height must be in [512, 2048]")
        return width, height
    min_pixels = 2560 * 1440 if ("seedream-4-5" in model or "seedream-5" in model) else 1280 * 720
    if not (min_pixels <= width * height <= 4096 * 4096) or not (1 / 16 <= width / max(height, 1) <= 16):
        raise invalid("size", f"total pixels must be in [{min_pixels}, 16777216] and the aspect ratio in [1/16, 16]")
    return width, height


async def generate_images(request: web.Request) -> web.Response:
    state, body = await begin(request)
    body = require_object(body)
    model = check_model(state, body, ("seedream", "seededit"), "image generation")
    prompt = body.get("prompt")
    if prompt is None:
        raise missing("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt", "expected a non-empty string")
    scenario = Scenario.parse(prompt, "prompt")
    refs = body.get("image")
    refs = [] if refs is None else [refs] if isinstance(refs, str) else refs
    if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs) or len(refs) > 14:
        raise invalid("image", "expected a URL / data URI or an array of at most 14")
    width, height = image_size(model, body.get("size"))
    response_format = body.get("response_format", "url")
    if response_format not in ("url", "b64_json"):
        raise invalid("response_format", "expected url or b64_json")
    seed = body.get("seed", -1)
    if not is_int(seed) or not -1 <= seed <= 2_147_483_647:
        raise invalid("seed", "expected an integer in [-1, 2147483647]")
    check_bool(body, "watermark")
    if body.get("stream"):
        raise invalid("stream", "streaming is not simulated by this fake")
    output_format = body.get("output_format", "jpeg")
    if output_format not in ("jpeg", "png"):
        raise invalid("output_format", "expected jpeg or png")
    mode = body.get("sequential_image_generation", "disabled")
    if mode not in ("auto", "disabled"):
        raise invalid("sequential_image_generation", "expected auto or disabled")
    options = body.get("sequential_image_generation_options") or {}
    if not isinstance(options, dict):
        raise invalid("sequential_image_generation_options", "expected an object")
    max_images = options.get("max_images", 15)
    if not is_int(max_images) or not 1 <= max_images <= 15:
        raise invalid("sequential_image_generation_options.max_images", "expected an integer in [1, 15]")
    if scenario.status is not None:
        raise status_error(scenario.status, scenario.error_code, scenario.retry_after)
    if scenario.fail is not None:
        raise ArkError(400, scenario.fail or "OutputImageSensitiveContentDetected",
                       "The request failed because the output image may contain sensitive information (simulated).")

    count = 1
    if mode == "auto":
        wanted = scenario.images if scenario.images is not None else max_images
        count = max(1, min(wanted, max_images, 15 - len(refs)))
    failed = min(scenario.failed_images, count)
    batch = secrets.token_hex(8)
    data: list[dict[str, Any]] = []
    tokens = 0
    for i in range(count):
        if i >= count - failed:
            data.append({"error": {"code": "OutputImageSensitiveContentDetected",
                                   "message": "The output image may contain sensitive information (simulated)."}})
            continue
        item: dict[str, Any] = {}
        if response_format == "url":
            item["url"] = f"{public_base(request)}/images/{batch}_{i}.{output_format}"
        else:
            item["b64_json"] = base64.b64encode(FAKE_PNG if output_format == "png" else FAKE_JPEG).decode()
        item["size"] = f"{width}x{height}"
        data.append(item)
        tokens += round(width * height / 256)
    usage = {"generated_images": count - failed, "output_tokens": tokens, "total_tokens": tokens}
    return json_response({"model": model, "created": int(time.time()), "data": data, "usage": usage})


# --------------------------------------------------------------------------- media files


async def video_file(request: web.Request) -> web.Response:
    task = request.app[STATE_KEY].tasks.get(request.match_info["task_id"])
    if task is None or task.status != "succeeded":
        raise web.HTTPNotFound()
    return web.Response(body=FAKE_MP4, content_type="video/mp4")


async def frame_file(request: web.Request) -> web.Response:
    task = request.app[STATE_KEY].tasks.get(request.match_info["task_id"])
    if task is None or task.status != "succeeded" or not task.return_last_frame:
        raise web.HTTPNotFound()
    return web.Response(body=FAKE_PNG, content_type="image/png")


async def image_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name.endswith(".png"):
        return web.Response(body=FAKE_PNG, content_type="image/png")
    if name.endswith(".jpeg"):
        return web.Response(body=FAKE_JPEG, content_type="image/jpeg")
    raise web.HTTPNotFound()


# --------------------------------------------------------------------------- app


@web.middleware
async def ark_errors(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    request_id = new_request_id()
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except ArkError as exc:
        response = exc.response(request_id)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if not local_path(request).startswith(API_PREFIX + "/"):
            raise
        await read_json(request, request.app[STATE_KEY])  # no handler ran: record it here
        response = ArkError(exc.status, "NotFound" if exc.status == 404 else "MethodNotAllowed",
                            f"The requested API {request.method} {request.path} is not found.").response(request_id)
    response.headers.setdefault("x-request-id", request_id)
    return response


async def close_callbacks(app: web.Application) -> None:
    state = app[STATE_KEY]
    for delivery in list(state.pending_callbacks):
        delivery.cancel()
    if state.pending_callbacks:
        await asyncio.gather(*state.pending_callbacks, return_exceptions=True)
    if state.session is not None:
        await state.session.close()
        state.session = None


def create_app(api_keys: Iterable[str] | None = None, *, models: Iterable[str] | None = None) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeArkState."""
    state = FakeArkState(api_keys=set(api_keys) if api_keys is not None else None,
                         models=tuple(models) if models is not None else DEFAULT_MODELS)
    app = web.Application(middlewares=[ark_errors])
    app[STATE_KEY] = state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app["state"] = state  # the documented string key, kept for convenience
    tasks = f"{API_PREFIX}/contents/generations/tasks"
    app.router.add_post(tasks, create_task)
    app.router.add_get(tasks, list_tasks)
    app.router.add_get(tasks + "/{task_id}", get_task)
    app.router.add_delete(tasks + "/{task_id}", delete_task)
    app.router.add_post(f"{API_PREFIX}/images/generations", generate_images)
    app.router.add_get("/videos/{task_id}.mp4", video_file)
    app.router.add_get("/frames/{task_id}.png", frame_file)
    app.router.add_get("/images/{name}", image_file)
    app.on_cleanup.append(close_callbacks)
    return app
