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

The plumbing shared with the other fakes (request recording, mounting under a
prefix) lives in :mod:`tokenhub.simulator.common`.

The package :mod:`tokenhub.simulator.ark`, module by module:

* ``models``: The Seedance/Seedream models the fake serves and what each video model accepts (sizes,
  ratios, durations).
* ``errors``: Ark's error bodies (``error.code``/``message``/``param``/``type``) and request ids.
* ``scenario``: The ``#fake:`` directives the fake Ark understands.
* ``tasks``: A video task as the fake holds it (its life from ``queued`` to a terminal status) and
  the fake's state.
* ``callbacks``: Task status callbacks POSTed to ``callback_url``, in status order, with retries.
* ``request``: Reading a request: its body, its key, and the checks of the fields every endpoint
  shares.
* ``video_tasks``: The video task endpoints: create, get, list and delete a task.
* ``images``: Synchronous Seedream image generation (``/images/generations``).
* ``media``: The media the fake hands out URLs to: result videos, last frames and images.
* ``app``: The fake Ark's routes, error middleware and app factory.
"""

from __future__ import annotations

from tokenhub.simulator.ark.app import create_app
from tokenhub.simulator.ark.errors import status_error
from tokenhub.simulator.ark.models import DEFAULT_MODELS
from tokenhub.simulator.ark.scenario import Scenario
from tokenhub.simulator.ark.tasks import STATE_KEY, ArkTask, CallbackAttempt, FakeArkState

__all__ = [
    "ArkTask",
    "CallbackAttempt",
    "DEFAULT_MODELS",
    "FakeArkState",
    "STATE_KEY",
    "Scenario",
    "create_app",
    "status_error",
]
