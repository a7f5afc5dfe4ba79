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

The plumbing shared with the other fakes (request recording, ``#fake:`` syntax,
mounting under a prefix) lives in :mod:`tokenhub.simulator.common`.

The package :mod:`tokenhub.simulator.kling`, module by module:

* ``models``: Kling's model families and what each model accepts (durations, modes, sound, ratios,
  prompt length).
* ``errors``: Kling's error envelope (HTTP status + business code) and request ids.
* ``scenario``: The ``#fake:`` directives the fake Kling understands.
* ``tasks``: A video task as the fake holds it, its scripted life from ``submitted`` on, and the
  fake's state.
* ``auth``: Kling's JWT authentication (HS256 tokens signed with the secret key of an access key).
* ``validation``: The limits the real Kling API enforces on a create request (each a 400, code
  1201).
* ``app``: The fake Kling's routes (create, get, list per family; the result media), handlers and
  app factory.
"""

from __future__ import annotations

from tokenhub.simulator.kling.app import create_app
from tokenhub.simulator.kling.errors import status_error
from tokenhub.simulator.kling.models import DEFAULT_MODELS, FAMILIES
from tokenhub.simulator.kling.scenario import Scenario, iter_directive_names
from tokenhub.simulator.kling.tasks import FAIL_MESSAGE, STATE_KEY, FakeKlingState, KlingTask

__all__ = [
    "DEFAULT_MODELS",
    "FAIL_MESSAGE",
    "FAMILIES",
    "FakeKlingState",
    "KlingTask",
    "STATE_KEY",
    "Scenario",
    "create_app",
    "iter_directive_names",
    "status_error",
]
