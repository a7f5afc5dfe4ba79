"""A protocol-exact fake Google Gemini API upstream (generativelanguage.googleapis.com, aiohttp).

Used as the Gemini upstream in the gateway's tests and shipped as the operator
simulator.  Everything is deterministic except ``responseId`` and the thought
signatures (random opaque base64, remembered in ``state.signatures``).

Usage::

    app = create_app(api_keys={"gm-test"}, token_delay=0.0)
    state: FakeGeminiState = app["state"]      # also app[STATE_KEY]

Routes (``/v1beta`` and ``/v1``)
--------------------------------
``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent``
(``?alt=sse`` → SSE, otherwise a streamed JSON array), ``:countTokens`` →
``{"totalTokens": N, "promptTokensDetails": [...]}``; ``GET /v1beta/models``
and ``GET /v1beta/models/{model}``.  Unknown URLs get Google's HTML 404 page.

Wire format, as observed in captures of the real API: non-stream bodies (and
error bodies) are pretty-printed JSON with 2-space indents and a trailing
newline; SSE events are ``data: {json}\\r\\n\\r\\n`` with Google's compact
``{"a": 1,"b": 2}`` spacing and **no** ``[DONE]``; the JSON-array stream is
``[{pretty}\\n,\\r\\n{pretty}\\n]``.  Proto3 JSON rules apply: zero counters are
omitted (``candidatesTokenCount`` is absent while 0, ``thoughtsTokenCount`` when
there was no thinking).  Requests are accepted in camelCase and snake_case.

``state.requests`` records every request (``RecordedRequest``: method, path,
``query`` dict, ``headers`` — case-insensitive — parsed ``json`` or None, ``raw``).

Auth: ``x-goog-api-key`` header or ``?key=``.  A wrong key → 400
``INVALID_ARGUMENT`` "API key not valid. Please pass a valid API key." with the
``ErrorInfo`` (reason ``API_KEY_INVALID``) and ``LocalizedMessage`` details;
a *missing* key → 403 ``PERMISSION_DENIED`` "Method doesn't allow unregistered
callers ..." (what Google answers; no details).  ``api_keys=None`` accepts all.
Errors are always ``{"error": {"code", "message", "status"[, "details"]}}``; for
``streamGenerateContent`` without ``alt=sse`` the error object is wrapped in a
one-element JSON array, as Google does.  Unknown model → 404 ``NOT_FOUND``
"models/X is not found for API version v1beta, or is not supported for
generateContent. ...".

Validation (400 ``INVALID_ARGUMENT``, real messages unless noted)
-----------------------------------------------------------------
* unknown top-level request field → "Invalid JSON payload received. Unknown
  name ..." with a ``BadRequest`` detail (proto parsing);
* missing/empty ``contents`` → "* GenerateContentRequest.contents: contents is
  not specified"; a content without parts → "...parts: contents.parts must not
  be empty.";
* a role other than user/model → "Please use a valid role: user, model." (a
  missing role means user, as AI Studio does);
* consecutive same-role contents are **accepted** (the Developer API takes
  them); ``#fake:strict_roles`` rejects them with the old Gemini 1.0 message
  "Please ensure that multiturn requests alternate between user and model.";
* function-call turn not right after a user/function-response turn, function
  response turn not right after a function-call turn, and a different number of
  response parts than call parts → Google's "Please ensure that ..." messages;
* ``functionResponse`` without ``name`` → "...function_response.name: Name cannot
  be empty."; a response whose name matches no call of the preceding call turn →
  400 (message simulated: the real API's behaviour is unconfirmed);
* ``parameters`` (OpenAPI-subset Schema) containing a key the proto does not
  know (``additionalProperties``, ``$schema``, ``$ref``, ``const``,
  ``exclusiveMinimum`` ...) → "Invalid JSON payload received. Unknown name
  \\"additionalProperties\\" at 'tools[0].function_declarations[0].parameters':
  Cannot find field." + ``BadRequest.fieldViolations``; an OBJECT schema with
  missing/empty ``properties`` → "...parameters.properties: should be non-empty
  for OBJECT type".  ``parametersJsonSchema`` is accepted as-is;
* both ``thinkingBudget`` and ``thinkingLevel`` → "You can only set only one of
  thinking budget and thinking level.";
* models whose name starts with ``gemini-3``: in the *current turn* (the
  contents after the last user content holding anything but function
  responses) the first ``functionCall`` part of every model content must carry
  a ``thoughtSignature`` → "Function call is missing a thought_signature in
  functionCall parts. ... function call `default_api:NAME` , position N. ..."
  (N = 1-based index of the content).  A signature that this fake did not issue
  → "Corrupted thought signature."; ``skip_thought_signature_validator`` is
  accepted.  Earlier turns are not validated (documented Google behaviour).

Token accounting (identical for stream and non-stream)
------------------------------------------------------
* ``promptTokenCount`` = whitespace-separated words of the ``systemInstruction``
  text plus, over all contents, the words of text parts, and for
  ``functionCall``/``functionResponse`` parts 1 (the name) + the words of the
  compact JSON of ``args``/``response``.  ``countTokens`` returns the same count.
* ``candidatesTokenCount`` = generated pieces: one per reply word (a word plus
  its following space), one per ``functionCall`` part.  Thoughts are **not**
  included (Google's definition).
* ``thoughtsTokenCount`` = N for ``#fake:thinking=N``, whether or not
  ``includeThoughts`` makes the thought text visible.
* ``totalTokenCount = promptTokenCount + candidatesTokenCount + thoughtsTokenCount``.
* ``#fake:cached=N`` → ``cachedContentTokenCount`` = min(N, prompt), *included*
  in ``promptTokenCount`` (plus ``cacheTokensDetails``).
* Default reply "Hello! This is a fake reply." (6 pieces), words repeating for
  other lengths; thoughts cycle "Let me think about this step by step.".
* ``generationConfig.maxOutputTokens`` caps thoughts + text pieces (thoughts
  first, as Gemini 2.5 counts thinking against it) → ``MAX_TOKENS``.
* Streams carry cumulative ``usageMetadata`` on every event (partial early,
  complete on the last), ``modelVersion`` (the requested model) and one
  ``responseId``.  Only one candidate is ever produced (``candidateCount`` ignored).

Stream shape: one event per thought piece (``{"text": ..., "thought": true}``,
only with ``includeThoughts``), one per text piece; ``finishReason`` rides on the
last content event.  For gemini-3 models a text reply ends with an extra event
whose only part is ``{"text": "", "thoughtSignature": ...}`` (non-stream: the
signature sits on the text part).  Function calls arrive whole, both in one
event, only the first carrying ``thoughtSignature``, with ``finishReason:
"STOP"`` and ``finishMessage: "Model generated function call(s)."``.

Scenario directives
-------------------
Written in the text of the LAST user content as ``#fake:NAME`` or
``#fake:NAME=VALUE`` (several allowed; unknown → 400).  When the last user
content holds only function responses (second step of a tool loop) there are no
directives and the reply is plain text.

=====================  ======================================================
``tokens=N``           reply with exactly N text pieces
``tools``              two ``functionCall`` parts of ``get_weather`` (or the
                       request's first declared function) with
                       ``{"city":"Paris"}``/``{"city":"Rome"}``
``thinking=N``         N thought pieces (visible only with
                       ``thinkingConfig.includeThoughts``)
``cached=N``           ``cachedContentTokenCount`` (clamped to the prompt)
``bad_usage=KIND``     a malformed ``candidatesTokenCount``: ``negative``
                       (-7), ``float`` (12.5), ``string`` ("12") or ``huge`` (3e12)
``max_tokens``         ``finishReason: "MAX_TOKENS"``
``safety``             ``finishReason: "SAFETY"``, no content, safetyRatings
``recitation``         half the text, then ``finishReason: "RECITATION"``
``blocked_prompt``     HTTP 200, no ``candidates``,
                       ``promptFeedback.blockReason: "SAFETY"``
``malformed_call``     ``finishReason: "MALFORMED_FUNCTION_CALL"`` +
                       ``finishMessage``, no content
``strict_roles``       reject consecutive same-role contents
``status=CODE``        HTTP CODE with Google's error body (400, 401, 403, 404,
                       429 + QuotaFailure/Help/RetryInfo, 500, 503, 504 ...)
``retry_after=S``      ``RetryInfo.retryDelay`` for 429 (default ``1s``)
``error_mid``          stream some events, then ``data: {"error": ...}`` and
                       close (non-stream: HTTP 200 with an error body)
``reset``              stream some events, then abort the TCP connection
                       (non-stream: abort before answering)
``truncate``           stream some events, then end cleanly with no
                       finishReason (non-stream: half a JSON body)
``slow_first=S``       wait S seconds before the first byte
``delay=S``            wait S seconds between stream events (overrides
                       ``token_delay``)
``hang``               never answer; wait for the client to go away
``lf``                 ``\\n\\n`` SSE separators instead of Google's ``\\r\\n\\r\\n``
=====================  ======================================================

Cancellation: a request whose client goes away before the response is complete
increments ``cancelled_requests`` (and ``cancelled_streams`` for streams);
``active_requests``/``active_streams`` count in-flight ones.

The plumbing shared with the other fakes (``Headers``, the state's counters,
disconnect handling, ``#fake:`` parsing) lives in
:mod:`tokenhub.simulator.common`; this fake keeps its own ``RecordedRequest``
(with ``query``) and parses bodies with the standard ``json`` module.

The package :mod:`tokenhub.simulator.gemini`, module by module:

* ``state``: The fake Gemini's state: its keys, models, pacing, issued thought signatures and
  recorded requests.
* ``errors``: Google's error bodies (``code``/``message``/``status``, field violations) and the 404
  HTML page.
* ``contents``: What the fake reads from a request: its turns, parts, text, prompt tokens and
  directives' text.
* ``scenario``: The ``#fake:`` directives the fake Gemini understands.
* ``validation``: The limits the real Gemini API enforces on a request (each a 400
  ``INVALID_ARGUMENT``).
* ``response``: What a response will say (the plan) and the ``GenerateContentResponse`` objects
  built from it.
* ``streaming``: The stream and non-stream answers: SSE or Google's JSON-array stream, and the
  failure directives.
* ``app``: The fake Gemini's routes (``models/{model}:{method}``, model listing), handlers and app
  factory.
"""

from __future__ import annotations

from tokenhub.simulator.gemini.app import create_app, split_model_method
from tokenhub.simulator.gemini.errors import status_error
from tokenhub.simulator.gemini.scenario import Scenario, iter_directive_names
from tokenhub.simulator.gemini.state import DEFAULT_MODELS, STATE_KEY, FakeGeminiState, RecordedRequest

__all__ = [
    "DEFAULT_MODELS",
    "FakeGeminiState",
    "RecordedRequest",
    "STATE_KEY",
    "Scenario",
    "create_app",
    "iter_directive_names",
    "split_model_method",
    "status_error",
]
