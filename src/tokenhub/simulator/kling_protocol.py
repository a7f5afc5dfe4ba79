"""A protocol-exact fake Kling AI video API upstream (api-singapore.klingai.com, aiohttp).

Used as the Kling upstream in the gateway's tests and shipped as the operator
simulator.  Task lifecycles are deterministic and driven by polling; only ids
(``task_id``, video ``id``, ``request_id``) and timestamps vary.

Usage::

    app = create_app(credentials={"ak-test": "sk-test-secret"})
    state: FakeKlingState = app["state"]      # also app[STATE_KEY]

Routes
------
One family per endpoint, as in Kling's API; a task is only visible on the
family path that created it (another family's id → 404, code 1203):

=====================================  ===============================================
``POST /v1/videos/text2video``         create (``model_name`` kling-v1 … kling-v3)
``GET  /v1/videos/text2video/{id}``    query one task; **each call advances it**
``GET  /v1/videos/text2video``         list (``?pageNum=1&pageSize=30``), newest first;
                                       listing never advances a task
``…/v1/videos/image2video``            the same three for image-to-video
``…/v1/videos/omni-video``             the same three for the omni models
                                       (``kling-video-o1``, ``kling-v3-omni``)
``GET  /fake-media/kling/{vid}.mp4``   the result video: a few bytes of ``video/mp4``
                                       (no auth, like Kling's CDN)
=====================================  ===============================================

``{id}`` may also be the caller's ``external_task_id``.  Video URLs start with
``common.public_base`` (the origin, plus the prefix when mounted as a sub-app).  Unknown routes answer
404 with code 1203 (1202 for a known path with the wrong method).

``state.requests`` records every request (``RecordedRequest``: method, path,
``headers`` — case-insensitive — parsed ``json`` or None, ``raw``), including
rejected ones.  ``state.tasks`` maps task id → ``KlingTask`` (family, owner
access key, model, mode, requested ``duration``, ``status`` and
``status_history``, ``poll_count``, the parsed ``scenario`` …).

Envelope
--------
Every answer is ``{"code", "message", "request_id", "data"}``; ``code`` 0 /
``message`` ``"SUCCEED"`` on success.  Errors carry a non-200 HTTP status, a
non-zero ``code`` and no ``data`` key (as in Kling's documented 1303 sample).
Timestamps (``created_at``/``updated_at``) are Unix **milliseconds**.  Task
statuses: ``submitted``, ``processing``, ``succeed`` (sic), ``failed``.  A
succeeded task carries ``task_result.videos[{id, url, duration}]`` where
``duration`` is a **string** of seconds, plus ``final_unit_deduction`` (a string;
the fake's value is illustrative: 1 unit per 5 s std, 1.75 per 5 s pro).
Non-succeeded tasks have no ``task_result``; a failed one has
``task_status_msg`` set (``""`` otherwise).

Auth (codes from Kling's error table; which fault maps to 1000 vs 1002 is the fake's choice)
--------------------------------------------------------------------------------------------
``Authorization: Bearer <JWT>``: header ``{"alg": "HS256", "typ": "JWT"}``,
claims ``iss`` = access key, ``exp``, ``nbf`` (all three required), HS256-signed
with the secret key.  All HTTP 401:

* no/empty ``Authorization`` → 1001;
* not ``Bearer <token>``, undecodable token, ``alg`` other than HS256, ``typ``
  other than JWT, bad signature, missing ``exp``/``nbf``/``iss`` → 1002;
* ``iss`` not a known access key → 1000;
* ``nbf`` in the future → 1003;  ``exp`` in the past → 1004.

With ``credentials=None`` every request is accepted (the owner is the token's
unverified ``iss``, or ``""``).

Validation (HTTP 400)
---------------------
A body that is not a JSON object → 1200.  Field errors → 1201, the message naming
the field and the allowed values: unknown ``model_name`` for the family (absent
means ``kling-v1``, as Kling documents; omni requires it); ``mode`` not
std|pro; ``aspect_ratio`` not 16:9|9:16|1:1; ``duration`` not a **string** or
not allowed for the model ("5"/"10"; "3"…"15" for kling-v3 and kling-v3-omni;
"3"…"10" for kling-video-o1); ``cfg_scale`` outside [0, 1]; ``sound`` not
on|off, or "on" for a model before kling-v2-6 (or kling-v2-6 in std); prompt longer than 2500 chars
(text2video/omni need a prompt unless ``multi_shot``); image2video without
``image`` and ``image_tail``, an image that is neither an http(s) URL nor raw
base64 (a ``data:`` prefix is rejected), ``image_tail`` together with
``camera_control``/masks; omni ``image_list`` items without ``image_url`` or with
a ``type`` other than first_frame|end_frame; a non-string ``callback_url``; an
``external_task_id`` already used by the same access key.

``max_concurrency=N`` (off by default) caps an access key's unfinished tasks:
the next create answers 429, code 1303, ``parallel task over resource pack
limit``.

Lifecycle
---------
Create → ``submitted``.  Each ``GET …/{id}`` first counts a poll, then: fewer than
``queued`` polls → ``submitted``; fewer than ``queued + polls`` → ``processing``;
after that the terminal state (``succeed``, or ``failed`` with ``#fake:fail``).
Defaults (queued=1, polls=2): GET 1 and 2 → processing, GET 3 → succeed.  A
terminal task never changes again.  The reported ``duration`` is the requested
one unless ``#fake:duration`` says otherwise.

Scenario directives
-------------------
Written in the ``prompt`` (and ``multi_prompt[].prompt``) as ``#fake:NAME`` or
``#fake:NAME=VALUE``; an unknown name or a bad value is a 400, code 1201.

====================  ===========================================================
``queued=N``          polls that still see ``submitted`` (default 1)
``polls=N``           further polls that see ``processing`` (default 2)
``fail``              end in ``failed`` with a ``task_status_msg``
``hang``              stay ``processing`` forever
``duration=S``        report ``videos[0].duration`` = S (e.g. ``4.2``) instead of
                      the requested duration
``status=CODE``       the create answers HTTP CODE with Kling's code for it
                      (400→1200, 401→1000, 403→1103, 404→1203, 429→1302,
                      500→5000, 503→5001, 504→5002); no task is created
``poll_status=CODE``  the first GET of the task answers that error instead (it
                      does not count as a poll); later GETs recover
``rate_limit``        the create answers 429, code 1303 (concurrency over the
                      resource-pack limit); no task is created
====================  ===========================================================
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import jwt
import orjson
from aiohttp import web

from tokenhub.simulator.common import public_base
from tokenhub.simulator.openai_protocol import DIRECTIVE_RE, Headers, RecordedRequest

__all__ = [
    "STATE_KEY",
    "FAMILIES",
    "FakeKlingState",
    "KlingTask",
    "RecordedRequest",
    "Scenario",
    "create_app",
]

FAMILIES = ("text2video", "image2video", "omni-video")
TEXT2VIDEO_MODELS = ("kling-v1", "kling-v1-6", "kling-v2-master", "kling-v2-1-master", "kling-v2-5-turbo",
                     "kling-v2-6", "kling-v3")
IMAGE2VIDEO_MODELS = TEXT2VIDEO_MODELS + ("kling-v1-5", "kling-v2-1")
OMNI_MODELS = ("kling-video-o1", "kling-v3-omni")
DEFAULT_MODELS = IMAGE2VIDEO_MODELS + OMNI_MODELS
FAMILY_MODELS = {"text2video": TEXT2VIDEO_MODELS, "image2video": IMAGE2VIDEO_MODELS, "omni-video": OMNI_MODELS}
DEFAULT_MODEL_NAME = "kling-v1"
LONG_DURATIONS = tuple(str(s) for s in range(3, 16))
DURATIONS = {"kling-v3": LONG_DURATIONS, "kling-v3-omni": LONG_DURATIONS,
             "kling-video-o1": tuple(str(s) for s in range(3, 11))}
STANDARD_DURATIONS = ("5", "10")
SOUND_MODELS = frozenset({"kling-v2-6", "kling-v3", "kling-v3-omni"})
SILENT_STD_MODELS = frozenset({"kling-v2-6"})  # std mode generates no audio
MODES = ("std", "pro")
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
OMNI_IMAGE_TYPES = ("first_frame", "end_frame")
MAX_PROMPT_CHARS = 2500
PAGE_NUM_RANGE = (1, 1000)
PAGE_SIZE_RANGE = (1, 500)
MEDIA_PREFIX = "/fake-media/kling"
# A minimal ISO-BMFF header (an `ftyp` box): enough for a client to see an MP4.
FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08free"
SUBMITTED, PROCESSING, SUCCEED, FAILED = "submitted", "processing", "succeed", "failed"
TERMINAL = frozenset({SUCCEED, FAILED})
FAIL_MESSAGE = "Video generation failed (simulated by #fake:fail)."
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


# --------------------------------------------------------------------------- errors


class KlingError(Exception):
    """An error answered in Kling's envelope (HTTP status + business code)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        body = {"code": self.code, "message": self.message, "request_id": new_request_id()}
        return web.Response(status=self.status, body=orjson.dumps(body), content_type="application/json")


def invalid(message: str) -> KlingError:
    return KlingError(400, 1201, message)


# HTTP status → (Kling code, message) for #fake:status / #fake:poll_status.
STATUS_ERRORS: dict[int, tuple[int, str]] = {
    400: (1200, "Invalid request parameters (simulated)."),
    401: (1000, "Authentication failed (simulated)."),
    403: (1103, "No permission for the requested API or model (simulated)."),
    404: (1203, "The requested resource does not exist (simulated)."),
    429: (1302, "Requests are too frequent; the rate limit was exceeded (simulated)."),
    500: (5000, "Internal server error (simulated)."),
    503: (5001, "Service temporarily unavailable, possibly under maintenance (simulated)."),
    504: (5002, "Internal server timeout (simulated)."),
}


def status_error(status: int) -> KlingError:
    """The Kling error for an HTTP status (unlisted 4xx → 1200, unlisted 5xx → 5000)."""
    code, message = STATUS_ERRORS.get(status, (5000 if status >= 500 else 1200, f"Simulated HTTP {status} error."))
    return KlingError(status, code, message)


def concurrency_error() -> KlingError:
    return KlingError(429, 1303, "parallel task over resource pack limit")


# --------------------------------------------------------------------------- directives


@dataclass
class Scenario:
    """The parsed ``#fake:`` directives of a create request (see the module docstring)."""

    queued: int = 1
    polls: int = 2
    fail: bool = False
    hang: bool = False
    duration: str | None = None
    status: int | None = None
    poll_status: int | None = None
    rate_limit: bool = False

    @classmethod
    def parse(cls, text: str) -> Scenario:
        scenario = cls()
        types = {f.name: str(f.type) for f in fields(cls)}
        for name, value in DIRECTIVE_RE.findall(text):
            if name not in types:
                raise invalid(f"Unknown fake directive '#fake:{name}'.")
            setattr(scenario, name, _convert_directive(name, types[name], value))
        return scenario


def _convert_directive(name: str, type_name: str, value: str) -> Any:
    try:
        if type_name == "bool":
            if value:
                raise ValueError
            return True
        if "int" in type_name:
            number = int(value)
            if number < 0 or (name in ("status", "poll_status") and not 400 <= number <= 599):
                raise ValueError
            return number
        if float(value) <= 0:  # duration: a positive number of seconds, reported verbatim
            raise ValueError
        return value
    except ValueError:
        raise invalid(f"Invalid value for fake directive '#fake:{name}': {value!r}.") from None


# --------------------------------------------------------------------------- state


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


# --------------------------------------------------------------------------- helpers


def now_ms() -> int:
    return int(time.time() * 1000)


def new_request_id() -> str:
    return str(uuid.uuid4())


def new_numeric_id() -> str:
    """An 18-digit numeric string, the shape of Kling's task ids."""
    return str(10**17 + secrets.randbelow(9 * 10**17))


def envelope(data: Any) -> web.Response:
    body = {"code": 0, "message": "SUCCEED", "request_id": new_request_id(), "data": data}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def record(request: web.Request, state: FakeKlingState) -> tuple[Any, bytes]:
    raw = await request.read()
    parsed: Any = None
    if raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
    state.requests.append(RecordedRequest(request.method, request.path, Headers(request.headers.items()), parsed, raw))
    return parsed, raw


# --------------------------------------------------------------------------- auth


def authenticate(request: web.Request, state: FakeKlingState) -> str:
    """Verify Kling's JWT; return the access key (the task owner)."""
    authorization = request.headers.get("Authorization", "").strip()
    if state.credentials is None:
        _, _, token = authorization.partition(" ")
        try:
            iss = jwt.decode(token.strip(), options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError:
            iss = None
        return iss if isinstance(iss, str) else ""
    if not authorization:
        raise KlingError(401, 1001, "Authorization is empty.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise KlingError(401, 1002, "Authorization is invalid: expected 'Bearer <token>'.")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise KlingError(401, 1002, "Authorization is invalid: the token cannot be decoded.") from None
    if header.get("alg") != "HS256" or header.get("typ") != "JWT":
        raise KlingError(401, 1002, "Authorization is invalid: the token header must be "
                         '{"alg": "HS256", "typ": "JWT"}.')
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise KlingError(401, 1002, "Authorization is invalid: the token has no iss (access key).")
    secret = state.credentials.get(iss)
    if secret is None:
        raise KlingError(401, 1000, "Authentication failed: unknown access key.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "nbf", "iss"]})
    except jwt.ExpiredSignatureError:
        raise KlingError(401, 1004, "Authorization has expired.") from None
    except jwt.ImmatureSignatureError:
        raise KlingError(401, 1003, "Authorization is not yet valid.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise KlingError(401, 1002, f"Authorization is invalid: the token has no {exc.claim}.") from None
    except jwt.InvalidTokenError:
        raise KlingError(401, 1002, "Authorization is invalid: signature verification failed.") from None
    return iss


# --------------------------------------------------------------------------- validation


def _optional_str(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if value not in allowed:
        raise invalid(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")
    return str(value)


def _check_prompt(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string.")
    if len(value) > MAX_PROMPT_CHARS:
        raise invalid(f"{name} must not exceed {MAX_PROMPT_CHARS} characters.")
    return value


def _check_image(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{name} must be an image URL or a Base64 string.")
    if value.startswith(("http://", "https://")):
        return
    if value.startswith("data:"):
        raise invalid(f"{name}: send the raw Base64 string without a 'data:...;base64,' prefix.")
    try:
        if not _BASE64_RE.match(value):
            raise ValueError
        base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise invalid(f"{name} must be an image URL or a Base64 string.") from None


def _check_omni_images(body: dict[str, Any]) -> None:
    images = body.get("image_list")
    if images is None:
        return
    if not isinstance(images, list):
        raise invalid("image_list must be an array.")
    limit = 4 if body.get("video_list") else 7
    if len(images) > limit:
        raise invalid(f"image_list allows at most {limit} images here.")
    for i, item in enumerate(images):
        if not isinstance(item, dict) or "image_url" not in item:
            raise invalid(f"image_list[{i}] must be an object with image_url.")
        _check_image(f"image_list[{i}].image_url", item["image_url"])
        if item.get("type") is not None and item["type"] not in OMNI_IMAGE_TYPES:
            raise invalid(f"image_list[{i}].type must be one of {', '.join(OMNI_IMAGE_TYPES)}.")
    if body.get("video_list") is not None and not isinstance(body["video_list"], list):
        raise invalid("video_list must be an array.")


def model_allowed(model: str, family: str, state: FakeKlingState) -> bool:
    if model not in state.models:
        return False
    known = any(model in models for models in FAMILY_MODELS.values())
    return model in FAMILY_MODELS[family] if known else family != "omni-video"


@dataclass
class CreateRequest:
    model_name: str
    mode: str
    duration: str
    external_task_id: str | None
    callback_url: str | None
    directive_text: str


def validate_create(body: Any, family: str, state: FakeKlingState) -> CreateRequest:
    if not isinstance(body, dict):
        raise KlingError(400, 1200, "Invalid request parameters: the body must be a JSON object.")
    if family == "omni-video":
        model = body.get("model_name")
        if not isinstance(model, str):
            raise invalid("model_name is required.")
    else:
        model = body.get("model_name") or DEFAULT_MODEL_NAME
    allowed_models = [m for m in state.models if model_allowed(m, family, state)]
    if not isinstance(model, str) or not model_allowed(model, family, state):
        raise invalid(f"model_name must be one of {', '.join(allowed_models)} on /v1/videos/{family}; got {model!r}.")
    prompt = _check_prompt(body, "prompt")
    _check_prompt(body, "negative_prompt")
    multi_shot = body.get("multi_shot") is True
    if family != "image2video" and not multi_shot and not prompt.strip():
        raise invalid("prompt is required.")
    shot_prompts = ""
    if multi_shot and isinstance(body.get("multi_prompt"), list):
        shot_prompts = " ".join(str(s.get("prompt", "")) for s in body["multi_prompt"] if isinstance(s, dict))
    mode = _optional_str(body, "mode", MODES, "std")
    _optional_str(body, "aspect_ratio", ASPECT_RATIOS, "16:9")
    duration = body.get("duration", "5")
    if not isinstance(duration, str):
        raise invalid(f"duration must be a string, e.g. \"5\"; got {duration!r}.")
    durations = DURATIONS.get(model, STANDARD_DURATIONS)
    if duration not in durations:
        allowed = f"\"{durations[0]}\"…\"{durations[-1]}\"" if len(durations) > 2 else " or ".join(
            f'"{d}"' for d in durations)
        raise invalid(f"duration for {model} must be {allowed}; got {duration!r}.")
    cfg = body.get("cfg_scale")
    if cfg is not None and (isinstance(cfg, bool) or not isinstance(cfg, int | float) or not 0 <= cfg <= 1):
        raise invalid(f"cfg_scale must be a number in [0, 1]; got {cfg!r}.")
    sound = _optional_str(body, "sound", ("on", "off"), "off")
    if sound == "on" and model not in SOUND_MODELS:
        raise invalid(f"sound=on is not supported by {model} (only {', '.join(sorted(SOUND_MODELS))}).")
    if sound == "on" and model in SILENT_STD_MODELS and mode == "std":
        raise invalid(f"sound=on needs mode=pro on {model}.")
    if family == "image2video":
        image, tail = body.get("image"), body.get("image_tail")
        if not image and not tail:
            raise invalid("image or image_tail is required (at least one of them).")
        if image:
            _check_image("image", image)
        if tail:
            _check_image("image_tail", tail)
            clash = [k for k in ("camera_control", "static_mask", "dynamic_masks") if body.get(k)]
            if clash:
                raise invalid(f"image_tail cannot be combined with {', '.join(clash)}.")
    if family == "omni-video":
        _check_omni_images(body)
    camera = body.get("camera_control")
    if camera is not None and not isinstance(camera, dict):
        raise invalid("camera_control must be an object.")
    callback = body.get("callback_url")
    if callback is not None and not isinstance(callback, str):
        raise invalid("callback_url must be a string.")
    external = body.get("external_task_id")
    if external is not None and not isinstance(external, str):
        raise invalid("external_task_id must be a string.")
    return CreateRequest(model, mode, duration, external or None, callback or None, f"{prompt} {shot_prompts}")


# --------------------------------------------------------------------------- lifecycle


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


# --------------------------------------------------------------------------- handlers


def create_handler(family: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def create(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        body, _ = await record(request, state)
        try:
            owner = authenticate(request, state)
            create = validate_create(body, family, state)
            scenario = Scenario.parse(create.directive_text)
            if scenario.status is not None:
                raise status_error(scenario.status)
            if scenario.rate_limit:
                raise concurrency_error()
            mine = [t for t in state.tasks.values() if t.owner == owner]
            if create.external_task_id and any(t.external_task_id == create.external_task_id for t in mine):
                raise invalid(f"external_task_id {create.external_task_id!r} is already used.")
            if state.max_concurrency is not None and \
                    sum(t.status not in TERMINAL for t in mine) >= state.max_concurrency:
                raise concurrency_error()
        except KlingError as exc:
            return exc.response()
        created = now_ms()
        task = KlingTask(
            task_id=new_numeric_id(), family=family, owner=owner, model_name=create.model_name, mode=create.mode,
            duration=create.duration, request=body, scenario=scenario, media_base=public_base(request),
            external_task_id=create.external_task_id, callback_url=create.callback_url,
            poll_error_pending=scenario.poll_status is not None, created_at=created, updated_at=created,
            video_id=new_numeric_id(),
        )
        state.tasks[task.task_id] = task
        return envelope({"task_id": task.task_id, "task_status": task.status, "task_info": task_info(task),
                         "created_at": task.created_at, "updated_at": task.updated_at})

    return create


def get_handler(family: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def get_task(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        await record(request, state)
        try:
            owner = authenticate(request, state)
            task = state.find(owner, family, request.match_info["task_id"])
            if task is None:
                raise KlingError(404, 1203, "The requested task does not exist.")
            if task.poll_error_pending:
                task.poll_error_pending = False
                raise status_error(task.scenario.poll_status or 500)
        except KlingError as exc:
            return exc.response()
        advance(task)
        return envelope(render_task(task))

    return get_task


def _page_param(request: web.Request, name: str, default: int, bounds: tuple[int, int]) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = bounds[0] - 1
    if not bounds[0] <= value <= bounds[1]:
        raise invalid(f"{name} must be an integer in [{bounds[0]}, {bounds[1]}]; got {raw!r}.")
    return value


def list_handler(family: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def list_tasks(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        await record(request, state)
        try:
            owner = authenticate(request, state)
            page = _page_param(request, "pageNum", 1, PAGE_NUM_RANGE)
            size = _page_param(request, "pageSize", 30, PAGE_SIZE_RANGE)
        except KlingError as exc:
            return exc.response()
        # newest first: tasks are stored in creation order
        ordered = [t for t in reversed(state.tasks.values()) if t.owner == owner and t.family == family]
        return envelope([render_task(t) for t in ordered[(page - 1) * size:page * size]])

    return list_tasks


async def media(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    await record(request, state)
    task = state.by_video_id(request.match_info["video_id"])
    if task is None:
        return web.Response(status=404, text="Not Found")
    return web.Response(body=FAKE_MP4, content_type="video/mp4")


# --------------------------------------------------------------------------- app


@web.middleware
async def kling_not_found(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return KlingError(404, 1202, f"Invalid request method {request.method} for {request.path}.").response()
    except web.HTTPNotFound:
        return KlingError(404, 1203, f"The requested resource does not exist: {request.path}.").response()


def create_app(credentials: dict[str, str] | None = None, *, models: Iterable[str] | None = None,
               max_concurrency: int | None = None) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeKlingState.

    ``credentials`` maps access key → secret key (None: no auth).  ``models`` replaces the accepted
    ``model_name`` values (known Kling models stay limited to their families; other names are accepted on
    text2video and image2video with "5"/"10" durations).
    """
    state = FakeKlingState(
        credentials=dict(credentials) if credentials is not None else None,
        models=tuple(models) if models is not None else DEFAULT_MODELS,
        max_concurrency=max_concurrency,
    )
    app = web.Application(middlewares=[kling_not_found])
    app[STATE_KEY] = state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app["state"] = state  # the documented string key, kept for convenience
    for family in FAMILIES:
        app.router.add_post(f"/v1/videos/{family}", create_handler(family))
        app.router.add_get(f"/v1/videos/{family}", list_handler(family))
        app.router.add_get(f"/v1/videos/{family}/{{task_id}}", get_handler(family))
    app.router.add_get(MEDIA_PREFIX + "/{video_id}.mp4", media)
    return app


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return (f.name for f in fields(Scenario))
