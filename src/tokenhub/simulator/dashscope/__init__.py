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

The package :mod:`tokenhub.simulator.dashscope`, module by module:

* ``models``: The Wan models the fake serves and what each accepts (sizes or resolutions,
  durations).
* ``errors``: DashScope's error bodies (``request_id``/``code``/``message``) and JSON answers.
* ``scenario``: The ``#fake:`` directives the fake DashScope understands.
* ``tasks``: A video task as the fake holds it, its scripted life from ``PENDING`` on, and the
  fake's state.
* ``validation``: The limits the real video-synthesis API enforces on a create request (each a 400
  ``InvalidParameter``).
* ``render``: A task as a GET answers it: status, times, the result video URL and usage.
* ``app``: The fake DashScope's routes (create, get a task, the result video), handlers and app
  factory.
"""

from __future__ import annotations

from tokenhub.simulator.dashscope.app import create_app
from tokenhub.simulator.dashscope.errors import status_error
from tokenhub.simulator.dashscope.models import DEFAULT_MODELS, ModelSpec
from tokenhub.simulator.dashscope.render import FAIL_CODE, FAIL_MESSAGE
from tokenhub.simulator.dashscope.scenario import Scenario, iter_directive_names
from tokenhub.simulator.dashscope.tasks import STATE_KEY, FakeDashScopeState, TaskRecord

__all__ = [
    "DEFAULT_MODELS",
    "FAIL_CODE",
    "FAIL_MESSAGE",
    "FakeDashScopeState",
    "ModelSpec",
    "STATE_KEY",
    "Scenario",
    "TaskRecord",
    "create_app",
    "iter_directive_names",
    "status_error",
]
