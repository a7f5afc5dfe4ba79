"""A protocol-exact fake Alibaba Cloud Model Studio (DashScope) Wan video upstream (aiohttp).

Used as the DashScope upstream in the gateway's video tests and shipped as the
operator simulator.  Tasks move through their states deterministically, one step
per poll; only ids, ``request_id`` and the time strings vary.

Usage::

    app = create_app(api_keys={"sk-test"})
    state: FakeDashScopeState = app["state"]      # also app[STATE_KEY]
    # base URL for clients: http://host:port/api/v1

Routes
------
``POST /api/v1/services/aigc/video-generation/video-synthesis`` creates a task;
``GET /api/v1/tasks/{task_id}`` polls it; ``GET /dashscope-result/{task_id}.mp4``
serves the result video (a few bytes, ``video/mp4``; it stands for the signed OSS
URL, so it needs no API key; its URL starts with ``common.public_base``: the origin, plus the
prefix when mounted as a sub-app).  Unknown routes answer 404 ``NotFound``.

``state.requests`` records every request (``RecordedRequest``: method, path,
``headers`` — lower-case keys, case-insensitive lookup — parsed ``json`` or None,
``raw`` bytes), including rejected ones.  ``state.tasks`` maps task id →
``TaskRecord`` (model, request body, parsed directives, ``status``, ``history`` of
the statuses reported, ``polls`` = successful GETs, ``failed_polls``).

Auth and errors
---------------
``Authorization: Bearer <key>`` on every API route; a missing key is 401
``InvalidApiKey`` "No API-key provided.", an unknown one 401 ``InvalidApiKey``
"Invalid API-key provided.".  ``api_keys=None`` accepts everything.  Every error
body is ``{"request_id", "code", "message"}``.

Create checks, in order (messages are DashScope's unless marked *sim*):

* invalid JSON / non-object body → 400 ``InvalidParameter`` (*sim* message);
* no ``model`` → 400 ``BadRequest.EmptyModel``; unknown model → 404
  ``InvalidParameter`` "Model not exist.";
* ``X-DashScope-Async`` not ``enable`` → 403 ``AccessDenied`` "current user api
  does not support synchronous calls" (the Wan video models have no synchronous
  HTTP form);
* no ``input`` object → 400 ``BadRequest.EmptyInput``; t2v without
  ``input.prompt`` → 400 ``InvalidParameter`` "Field required: input.prompt";
  i2v without ``input.img_url`` → "Field required: input.img_url";
* t2v ``parameters.size`` not one of the model's ``W*H`` sizes → 400
  ``InvalidParameter`` "The size does not match the allowed size A,B,...";
  i2v ``parameters.resolution`` not in the model's tiers → "The resolution does
  not match the allowed resolution 480P,1080P." (*sim*, patterned on the size
  message); ``duration`` not allowed for the model → "The duration does not match
  the allowed duration 5." (*sim*); non-boolean ``prompt_extend``/``watermark``,
  ``seed`` outside [0, 2147483647] → 400 ``InvalidParameter`` (*sim*).

Defaults (``size`` ``1920*1080`` for wan2.2-t2v-plus, ``resolution`` per model,
``duration`` 5, ``prompt_extend`` true) follow the Model Studio API reference;
see ``DEFAULT_MODELS`` for the table.

Responses
---------
Create: ``{"output": {"task_status": "PENDING", "task_id"}, "request_id"}``.
Poll: ``{"request_id", "output": {"task_id", "task_status", "submit_time",
"scheduled_time" (from RUNNING), "end_time" (terminal), ...}}``; times are
``YYYY-MM-DD HH:MM:SS.mmm`` local time.  ``SUCCEEDED`` adds ``video_url``,
``orig_prompt`` and, when ``prompt_extend`` is on, ``actual_prompt``, plus
``usage: {"video_duration", "video_ratio", "video_count": 1, "SR"}``
(``video_ratio`` is the ``size`` for t2v and ``"standard"`` for i2v; ``SR`` the
resolution tier, e.g. 1080).  ``FAILED`` carries ``code``/``message`` inside
``output`` and no usage.  An unknown (or expired) task id answers HTTP 200 with
``{"request_id", "output": {"task_id", "task_status": "UNKNOWN"}}``.

Lifecycle: the first ``queued`` polls report ``PENDING``, the next ``polls``
report ``RUNNING``, then the task is terminal (``SUCCEEDED`` unless a directive
says otherwise) and stays so.  With the defaults: PENDING, RUNNING, RUNNING,
SUCCEEDED.

Scenario directives
-------------------
Written anywhere in ``input.prompt`` as ``#fake:NAME`` or ``#fake:NAME=VALUE``
(several allowed; an unknown name or bad value is a 400 ``InvalidParameter``).

=====================  ======================================================
``queued=N``           N polls answer ``PENDING`` before ``RUNNING`` (default 1)
``polls=N``            N polls answer ``RUNNING`` before the end (default 2)
``fail``               end ``FAILED`` with ``output.code``
                       ``DataInspectionFailed`` / ``output.message``
``cancel_upstream``    leave ``PENDING`` as ``CANCELED`` (cancelled upstream)
``unknown``            end ``UNKNOWN`` (as DashScope reports an expired task)
``hang``               stay ``RUNNING`` forever
``duration=N``         report ``usage.video_duration`` N instead of the request's
``status=CODE``        the create answers HTTP CODE with DashScope's error
                       (400 InvalidParameter, 401 InvalidApiKey, 403
                       AccessDenied, 429 Throttling, 500 InternalError, 503 ...)
``poll_status=CODE``   the first GET of the task answers HTTP CODE (not counted
                       as a poll), later GETs proceed normally
=====================  ======================================================

The plumbing shared with the other fakes (request recording, ``#fake:``
parsing) lives in :mod:`tokenhub.simulator.common`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.common import (
    Directives,
    RecordedRequest,
    RecordingState,
    directive_names,
    install_state,
    public_base,
    read_json,
)

__all__ = [
    "STATE_KEY",
    "DEFAULT_MODELS",
    "FakeDashScopeState",
    "ModelSpec",
    "RecordedRequest",
    "Scenario",
    "TaskRecord",
    "create_app",
]

API_PREFIX = "/api/v1"
CREATE_PATH = f"{API_PREFIX}/services/aigc/video-generation/video-synthesis"
TASK_PATH = f"{API_PREFIX}/tasks/{{task_id}}"
VIDEO_PREFIX = "/dashscope-result"
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isomfake-dashscope-video"
URL_LIFETIME_SECONDS = 24 * 3600
SEED_MAX = 2_147_483_647
PROMPT_EXTENSION = "Cinematic lighting, smooth camera motion, rich detail."
FAIL_CODE = "DataInspectionFailed"
FAIL_MESSAGE = "Output data may contain inappropriate content."
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"})

SIZES_480P = ("832*480", "480*832", "624*624")
SIZES_720P = ("1280*720", "720*1280", "960*960", "1088*832", "832*1088")
SIZES_1080P = ("1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632")


@dataclass(frozen=True)
class ModelSpec:
    """What one Wan model accepts.  ``kind`` is ``"t2v"`` (``size``) or ``"i2v"`` (``resolution``)."""

    kind: str
    durations: tuple[int, ...] = (5,)
    default_duration: int = 5
    sizes: tuple[str, ...] = ()  # t2v
    default_size: str = ""
    resolutions: tuple[str, ...] = ()  # i2v
    default_resolution: str = ""


DEFAULT_MODELS: dict[str, ModelSpec] = {
    "wan2.2-t2v-plus": ModelSpec("t2v", sizes=SIZES_480P + SIZES_1080P, default_size="1920*1080"),
    "wan2.2-i2v-plus": ModelSpec("i2v", resolutions=("480P", "1080P"), default_resolution="1080P"),
    "wan2.2-i2v-flash": ModelSpec("i2v", resolutions=("480P", "720P"), default_resolution="720P"),
    "wan2.5-t2v-preview": ModelSpec("t2v", durations=(5, 10), sizes=SIZES_480P + SIZES_720P + SIZES_1080P,
                                    default_size="1920*1080"),
    "wan2.5-i2v-preview": ModelSpec("i2v", durations=(5, 10), resolutions=("480P", "720P", "1080P"),
                                    default_resolution="1080P"),
    "wanx2.1-t2v-turbo": ModelSpec("t2v", sizes=SIZES_480P + SIZES_720P, default_size="1280*720"),
    "wanx2.1-t2v-plus": ModelSpec("t2v", sizes=SIZES_720P, default_size="1280*720"),
    "wanx2.1-i2v-turbo": ModelSpec("i2v", resolutions=("480P", "720P"), default_resolution="720P"),
    "wanx2.1-i2v-plus": ModelSpec("i2v", resolutions=("720P",), default_resolution="720P"),
}


# --------------------------------------------------------------------------- directives


@dataclass
class Scenario(Directives):
    """The parsed ``#fake:`` directives of a create request (see the module docstring)."""

    queued: int = 1
    polls: int = 2
    fail: bool = False
    cancel_upstream: bool = False
    unknown: bool = False
    hang: bool = False
    duration: int | None = None
    status: int | None = None
    poll_status: int | None = None

    @classmethod
    def directive_error(cls, message: str, code: str) -> DashScopeError:
        return DashScopeError(400, "InvalidParameter", message)


# --------------------------------------------------------------------------- state


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


# --------------------------------------------------------------------------- errors


def new_request_id() -> str:
    return str(uuid.uuid4())


def now_string() -> str:
    """DashScope's task time format: local time with milliseconds."""
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


class DashScopeError(Exception):
    """An error answered with DashScope's ``{"request_id", "code", "message"}`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return json_response({"request_id": new_request_id(), "code": self.code, "message": self.message},
                             self.status)


def status_error(status: int) -> DashScopeError:
    """The realistic DashScope error for an HTTP status (``#fake:status`` / ``#fake:poll_status``)."""
    known = {
        400: ("InvalidParameter", "The request is invalid (simulated by #fake:status=400)."),
        401: ("InvalidApiKey", "Invalid API-key provided."),
        403: ("AccessDenied", "Access denied."),
        404: ("ModelNotFound", "Model can not be found."),
        408: ("RequestTimeOut", "Request timed out, please try again later."),
        429: ("Throttling", "Requests throttling triggered."),
        500: ("InternalError", "An internal error has occured, please try again later or contact service support."),
        503: ("ServiceUnavailable", "Service temporarily unavailable, please try again later."),
        504: ("RequestTimeOut", "Request timed out, please try again later."),
    }
    code, message = known.get(status, ("InternalError" if status >= 500 else "InvalidParameter",
                                       f"Simulated HTTP {status} error."))
    return DashScopeError(status, code, message)


# --------------------------------------------------------------------------- validation


def invalid(message: str) -> DashScopeError:
    return DashScopeError(400, "InvalidParameter", message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class CreateRequest:
    model: str
    spec: ModelSpec
    prompt: str | None
    parameters: dict[str, Any]


def validate_identity(body: Any, state: FakeDashScopeState, request: web.Request) -> CreateRequest:
    """Body shape, model and the async header (checked before the input itself)."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object.")
    model = body.get("model")
    if model is None or model == "":
        raise DashScopeError(400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.')
    if not isinstance(model, str) or model not in state.models:
        raise DashScopeError(404, "InvalidParameter", "Model not exist.")
    if request.headers.get("X-DashScope-Async", "").strip().lower() != "enable":
        raise DashScopeError(403, "AccessDenied", "current user api does not support synchronous calls")
    input_ = body.get("input")
    if not isinstance(input_, dict) or not input_:
        raise DashScopeError(400, "BadRequest.EmptyInput", "Required input parameter missing from request.")
    prompt = input_.get("prompt")
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid("parameters must be an object.")
    return CreateRequest(model, state.models[model], prompt if isinstance(prompt, str) else None, parameters or {})


def validate_input(req: CreateRequest, body: dict[str, Any]) -> tuple[str | None, str | None, int, bool]:
    """The model-specific checks; returns (size, resolution, duration, prompt_extend)."""
    spec, params, input_ = req.spec, req.parameters, body["input"]
    if spec.kind == "t2v" and not (req.prompt and req.prompt.strip()):
        raise invalid("Field required: input.prompt")
    if spec.kind == "i2v":
        img_url = input_.get("img_url")
        if not isinstance(img_url, str) or not img_url.strip():
            raise invalid("Field required: input.img_url")
    size = resolution = None
    if spec.kind == "t2v":
        size = params.get("size", spec.default_size)
        if size not in spec.sizes:
            raise invalid(f"The size does not match the allowed size {','.join(spec.sizes)}.")
    else:
        resolution = params.get("resolution", spec.default_resolution)
        if resolution not in spec.resolutions:
            raise invalid(f"The resolution does not match the allowed resolution {','.join(spec.resolutions)}.")
    duration = params.get("duration", spec.default_duration)
    if not _is_int(duration) or duration not in spec.durations:
        raise invalid(f"The duration does not match the allowed duration {','.join(map(str, spec.durations))}.")
    for name in ("prompt_extend", "watermark"):
        if name in params and not isinstance(params[name], bool):
            raise invalid(f"parameters.{name} must be a boolean.")
    seed = params.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= SEED_MAX):
        raise invalid(f"parameters.seed must be an integer in [0, {SEED_MAX}].")
    return size, resolution, duration, params.get("prompt_extend", True)


# --------------------------------------------------------------------------- rendering


def sr_tier(task: TaskRecord) -> int:
    if task.resolution:
        return int(task.resolution.rstrip("P"))
    width, height = (int(v) for v in (task.size or "1920*1080").split("*"))
    short = min(width, height)
    return 1080 if short >= 1000 else 720 if short >= 700 else 480


def video_url(request: web.Request, task: TaskRecord) -> str:
    expires = int(time.time()) + URL_LIFETIME_SECONDS
    signature = uuid.uuid5(uuid.NAMESPACE_URL, f"{task.task_id}:{expires}").hex
    return (f"{public_base(request)}{VIDEO_PREFIX}/{task.task_id}.mp4"
            f"?Expires={expires}&OSSAccessKeyId=LTAIfakedashscope&Signature={signature}")


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


# --------------------------------------------------------------------------- handlers


async def record(request: web.Request, state: FakeDashScopeState) -> tuple[Any, bool]:
    """Record the request; return (parsed body or None, whether the body was valid JSON — an empty one is)."""
    recorded, ok = await read_json(request, state)
    return recorded.json, ok or not recorded.raw


def check_auth(request: web.Request, state: FakeDashScopeState) -> None:
    if state.api_keys is None:
        return
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise DashScopeError(401, "InvalidApiKey", "No API-key provided.")
    if key.strip() not in state.api_keys:
        raise DashScopeError(401, "InvalidApiKey", "Invalid API-key provided.")


async def create_task(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body, valid_json = await record(request, state)
        check_auth(request, state)
        if not valid_json:
            raise invalid("Request body is not valid JSON.")
        req = validate_identity(body, state, request)
        scenario = Scenario.parse(req.prompt or "")
        size, resolution, duration, prompt_extend = validate_input(req, body)
        if scenario.status is not None:
            raise status_error(scenario.status)
    except DashScopeError as exc:
        return exc.response()
    task = TaskRecord(
        task_id=str(uuid.uuid4()), model=req.model, kind=req.spec.kind, request=body, scenario=scenario,
        prompt=req.prompt, prompt_extend=bool(prompt_extend), size=size, resolution=resolution,
        duration=duration, submit_time=now_string(),
    )
    state.tasks[task.task_id] = task
    return json_response({"output": {"task_status": "PENDING", "task_id": task.task_id},
                          "request_id": new_request_id()})


async def get_task(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    await record(request, state)
    try:
        check_auth(request, state)
    except DashScopeError as exc:
        return exc.response()
    task_id = request.match_info["task_id"]
    task = state.tasks.get(task_id)
    if task is None:
        return json_response({"request_id": new_request_id(),
                              "output": {"task_id": task_id, "task_status": "UNKNOWN"}})
    if task.scenario.poll_status is not None and task.failed_polls == 0:
        task.failed_polls += 1
        return status_error(task.scenario.poll_status).response()
    task.advance()
    return json_response(render_task(request, task))


async def get_video(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    await record(request, state)
    task = state.tasks.get(request.match_info["task_id"])
    if task is None or task.status != "SUCCEEDED":
        return web.Response(status=404, text="NoSuchKey", content_type="text/plain")
    return web.Response(body=VIDEO_BYTES, content_type="video/mp4")


# --------------------------------------------------------------------------- app


@web.middleware
async def dashscope_not_found(request: web.Request,
                              handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        code = "NotFound" if exc.status == 404 else "InvalidParameter"
        message = "Not found!" if exc.status == 404 else f"Method {request.method} not allowed."
        return DashScopeError(exc.status, code, message).response()


def _model_table(models: Mapping[str, ModelSpec] | Iterable[str] | None) -> dict[str, ModelSpec]:
    if models is None:
        return dict(DEFAULT_MODELS)
    if isinstance(models, Mapping):
        return dict(models)
    table: dict[str, ModelSpec] = {}
    for name in models:
        if name not in DEFAULT_MODELS:
            raise ValueError(f"unknown Wan model {name!r}: pass a mapping of name -> ModelSpec instead")
        table[name] = DEFAULT_MODELS[name]
    return table


def create_app(api_keys: Iterable[str] | None = None, *,
               models: Mapping[str, ModelSpec] | Iterable[str] | None = None) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeDashScopeState.

    ``models``: None for ``DEFAULT_MODELS``, an iterable of names from it, or a
    mapping name → ModelSpec.
    """
    state = FakeDashScopeState(api_keys=set(api_keys) if api_keys is not None else None,
                               models=_model_table(models))
    app = web.Application(middlewares=[dashscope_not_found])
    install_state(app, STATE_KEY, state)
    app.router.add_post(CREATE_PATH, create_task)
    app.router.add_get(TASK_PATH, get_task)
    app.router.add_get(VIDEO_PREFIX + "/{task_id}.mp4", get_video)
    return app


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return directive_names(Scenario)
