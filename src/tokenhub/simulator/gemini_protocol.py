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
                       (-7), ``float`` (12.5) or ``string`` ("12")
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
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# The shared plumbing lives in common; ``X as X`` keeps the names that used to be defined here importable.
from tokenhub.simulator.common import ABORTED_KEY as ABORTED_KEY
from tokenhub.simulator.common import (
    REASONING_WORDS,
    REPLY_WORDS,
    ClientGone,
    Directives,
    EventWriter,
    Headers,
    TrackedState,
    abort_connection,
    directive_names,
    elapsed_ms,
    install_state,
    malformed_count,
    serve_scenario,
    stamp_start,
    word_pieces,
)
from tokenhub.simulator.common import STARTED_KEY as STARTED_KEY

__all__ = [
    "STATE_KEY",
    "FakeGeminiState",
    "RecordedRequest",
    "Scenario",
    "create_app",
]

DEFAULT_MODELS = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-flash-latest",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
)
DEFAULT_TOOL_NAME = "get_weather"
TOOL_ARGS = ({"city": "Paris"}, {"city": "Rome"})
SKIP_SIGNATURE = "skip_thought_signature_validator"
FUNCTION_CALL_FINISH_MESSAGE = "Model generated function call(s)."
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
_ID_ALPHABET = string.ascii_letters + string.digits + "-_"

# GenerateContentRequest fields (camelCase; snake_case spellings are accepted too).
REQUEST_FIELDS = frozenset({
    "model", "contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig",
    "cachedContent", "labels", "serviceTier", "store",
})
# Fields of the OpenAPI-subset Schema proto accepted in `parameters` by the Developer API.
SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})
GRPC_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}


# --------------------------------------------------------------------------- state


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    json: Any  # parsed body, or None when the body was not valid JSON
    raw: bytes = b""


@dataclass
class FakeGeminiState(TrackedState[RecordedRequest]):
    """``requests``, the ``active_*``/``cancelled_*`` counters and ``reset()`` come from TrackedState.

    ``reset()`` leaves issued signatures valid.
    """

    api_keys: set[str] | None = None
    token_delay: float = 0.0
    models: tuple[str, ...] = DEFAULT_MODELS
    signatures: set[str] = field(default_factory=set)  # every thoughtSignature issued

    def new_signature(self) -> str:
        signature = base64.b64encode(b"\x0a\x24" + secrets.token_bytes(46)).decode()
        self.signatures.add(signature)
        return signature


STATE_KEY = web.AppKey("tokenhub_fake_gemini_state", FakeGeminiState)


# --------------------------------------------------------------------------- JSON framing (Google's spacing)


def pretty_json(obj: Any) -> bytes:
    """Google's non-stream body formatting: 2-space indent, trailing newline."""
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def compact_json(obj: Any) -> bytes:
    """Google's SSE event formatting: ``{"a": 1,"b": [2,3]}``."""
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False).encode()


# --------------------------------------------------------------------------- errors


class GeminiError(Exception):
    """An error answered in Google's JSON error format."""

    def __init__(self, code: int, message: str, details: list[dict[str, Any]] | None = None,
                 status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.error: dict[str, Any] = {"code": code, "message": message,
                                      "status": status or GRPC_STATUS.get(code, "UNKNOWN")}
        if details:
            self.error["details"] = details

    @property
    def body(self) -> dict[str, Any]:
        return {"error": self.error}

    def response(self, wrap_in_array: bool = False) -> web.Response:
        body: Any = [self.body] if wrap_in_array else self.body
        return web.Response(status=self.code, body=pretty_json(body), content_type="application/json",
                            charset="UTF-8")


def invalid(message: str, details: list[dict[str, Any]] | None = None) -> GeminiError:
    return GeminiError(400, message, details)


def field_issue(path: str, message: str) -> str:
    return f"* GenerateContentRequest.{path}: {message}\n"


def unknown_name_error(violations: list[tuple[str, str]]) -> GeminiError:
    """Proto JSON parsing rejection: [(location, name)] → Google's message + BadRequest detail."""
    descriptions = [
        (location, f"Invalid JSON payload received. Unknown name \"{name}\""
                   + (f" at '{location}'" if location else "") + ": Cannot find field.")
        for location, name in violations
    ]
    return invalid("\n".join(d for _, d in descriptions), [{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": loc, "description": d} if loc else {"description": d}
                            for loc, d in descriptions],
    }])


def api_key_invalid() -> GeminiError:
    message = "API key not valid. Please pass a valid API key."
    return invalid(message, [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
    ])


def model_not_found(model: str, version: str, method: str) -> GeminiError:
    return GeminiError(404, f"models/{model} is not found for API version {version}, or is not supported "
                            f"for {method}. Call ListModels to see the list of available models and their "
                            "supported methods.")


def status_error(code: int, model: str, version: str, method: str, retry_after: str | None = None) -> GeminiError:
    """The realistic Gemini error for an HTTP status (``#fake:status=CODE``)."""
    if code == 400:
        return invalid("Request contains an invalid argument.")
    if code == 401:
        return GeminiError(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                "login cookie or other valid authentication credential. See "
                                "https://developers.google.com/identity/sign-in/web/devconsole-project.")
    if code == 403:
        return GeminiError(403, "The caller does not have permission")
    if code == 404:
        return model_not_found(model, version, method)
    if code == 429:
        delay = retry_after or "1"
        delay = delay if delay.endswith("s") else delay + "s"
        metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
        return GeminiError(429, (
            "You exceeded your current quota, please check your plan and billing details. For more information "
            "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current "
            f"usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: {metric}, "
            f"limit: 10, model: {model}\nPlease retry in {delay}."), [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": metric, "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": model}, "quotaValue": "10"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
        ])
    if code == 500:
        return GeminiError(500, "An internal error has occurred. Please retry or report in "
                                "https://developers.generativeai.google/guide/troubleshooting")
    if code == 503:
        return GeminiError(503, "The model is overloaded. Please try again later.")
    if code == 504:
        return GeminiError(504, "Deadline expired before operation could complete.")
    return GeminiError(code, f"Simulated HTTP {code} error.")


def mid_stream_error() -> dict[str, Any]:
    return status_error(500, "", "", "").body


NOT_FOUND_HTML = (
    "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
    "  <p><b>404.</b> <ins>That\u2019s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not "
    "found on this server.  <ins>That\u2019s all we know.</ins>\n"
)


# --------------------------------------------------------------------------- request access helpers


def snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def get(obj: Any, name: str, default: Any = None) -> Any:
    """Proto-JSON field access: camelCase or snake_case spelling."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    return obj.get(snake(name), default)


def parts_of(content: Any) -> list[Any]:
    parts = get(content, "parts")
    return parts if isinstance(parts, list) else []


def role_of(content: Any) -> str:
    role = get(content, "role")
    return "user" if role in (None, "") else role


def is_function_response_turn(content: Any) -> bool:
    parts = parts_of(content)
    return bool(parts) and all(get(p, "functionResponse") is not None for p in parts)


def function_calls_of(content: Any) -> list[dict[str, Any]]:
    return [p for p in parts_of(content) if isinstance(get(p, "functionCall"), dict)]


def words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    return len(json.dumps(value, separators=(",", ":")).split()) if value is not None else 0


def part_tokens(part: Any) -> int:
    if not isinstance(part, dict):
        return 0
    tokens = words(get(part, "text")) if isinstance(get(part, "text"), str) else 0
    for key, payload in (("functionCall", "args"), ("functionResponse", "response")):
        value = get(part, key)
        if isinstance(value, dict):
            tokens += 1 + words(get(value, payload))
    return tokens


def count_prompt_tokens(body: dict[str, Any]) -> int:
    total = sum(part_tokens(p) for p in parts_of(get(body, "systemInstruction")))
    contents = get(body, "contents")
    for content in contents if isinstance(contents, list) else []:
        total += sum(part_tokens(p) for p in parts_of(content))
    return total


def content_text(content: Any) -> str:
    return " ".join(t for t in (get(p, "text") for p in parts_of(content)) if isinstance(t, str))


def directive_text(contents: list[Any]) -> str:
    """The text of the last user content (empty when it holds only function responses)."""
    for content in reversed(contents):
        if role_of(content) == "user":
            return content_text(content)
    return ""


def declared_function_name(body: dict[str, Any]) -> str:
    tools = get(body, "tools")
    for tool in tools if isinstance(tools, list) else []:
        declarations = get(tool, "functionDeclarations")
        if isinstance(declarations, list) and declarations and isinstance(get(declarations[0], "name"), str):
            return get(declarations[0], "name")
    return DEFAULT_TOOL_NAME


def thinking_config(body: dict[str, Any]) -> dict[str, Any]:
    config = get(get(body, "generationConfig", {}), "thinkingConfig")
    return config if isinstance(config, dict) else {}


def is_gemini_3(model: str) -> bool:
    return model.startswith("gemini-3")


# --------------------------------------------------------------------------- directives


@dataclass
class Scenario(Directives):
    """The parsed ``#fake:`` directives of a request (see the module docstring)."""

    tokens: int | None = None
    tools: bool = False
    thinking: int = 0
    cached: int = 0
    bad_usage: str | None = None
    max_tokens: bool = False
    safety: bool = False
    recitation: bool = False
    blocked_prompt: bool = False
    malformed_call: bool = False
    strict_roles: bool = False
    status: int | None = None
    retry_after: str | None = None
    error_mid: bool = False
    reset: bool = False
    truncate: bool = False
    slow_first: float = 0.0
    delay: float | None = None
    hang: bool = False
    lf: bool = False

    @classmethod
    def directive_error(cls, message: str, code: str) -> GeminiError:
        return invalid(message)


# --------------------------------------------------------------------------- validation


def check_request_shape(body: Any) -> list[Any]:
    """Top-level structure; returns ``contents``."""
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    unknown = [k for k in body if k not in REQUEST_FIELDS and not any(snake(f) == k for f in REQUEST_FIELDS)]
    if unknown:
        raise unknown_name_error([("", name) for name in unknown])
    contents = get(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise invalid(field_issue("contents", "contents is not specified"))
    return contents


def validate_contents(contents: list[Any], scenario: Scenario) -> None:
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise invalid(f"Invalid JSON payload received. Expected an object at 'contents[{i}]'.")
        if role_of(content) not in ("user", "model"):
            raise invalid("Please use a valid role: user, model.")
        if not parts_of(content):
            raise invalid(field_issue(f"contents[{i}].parts", "contents.parts must not be empty."))
        for j, part in enumerate(parts_of(content)):
            response = get(part, "functionResponse")
            if response is not None and not (isinstance(get(response, "name"), str) and get(response, "name")):
                raise invalid(field_issue(f"contents[{i}].parts[{j}].function_response.name", "Name cannot be empty."))
        if scenario.strict_roles and i and role_of(contents[i - 1]) == role_of(content):
            raise invalid("Please ensure that multiturn requests alternate between user and model.")
    for i, content in enumerate(contents):
        previous = contents[i - 1] if i else None
        if role_of(content) == "model" and function_calls_of(content):
            if previous is None or role_of(previous) != "user":
                raise invalid("Please ensure that function call turn comes immediately after a user turn or "
                              "after a function response turn.")
        responses = [get(p, "functionResponse") for p in parts_of(content) if get(p, "functionResponse") is not None]
        if responses:
            calls = function_calls_of(previous) if previous is not None and role_of(previous) == "model" else []
            if not calls:
                raise invalid("Please ensure that function response turn comes immediately after a function "
                              "call turn.")
            if len(responses) != len(calls):
                raise invalid("Please ensure that the number of function response parts is equal to the number "
                              "of function call parts of the function call turn.")
            call_names = {get(get(c, "functionCall"), "name") for c in calls}
            for j, part in enumerate(parts_of(content)):
                name = get(get(part, "functionResponse"), "name")
                if name is not None and name not in call_names:
                    raise invalid(field_issue(
                        f"contents[{i}].parts[{j}].function_response.name",
                        f"Function response name `{name}` does not match any function call of the preceding "
                        "function call turn."))


def schema_unknown_keys(schema: Any, location: str) -> list[tuple[str, str]]:
    if not isinstance(schema, dict):
        return []
    found = [(location, k) for k in schema if k not in SCHEMA_FIELDS and not any(snake(f) == k for f in SCHEMA_FIELDS)]
    properties = get(schema, "properties")
    if isinstance(properties, dict):
        for index, value in enumerate(properties.values()):
            found += schema_unknown_keys(value, f"{location}.properties[{index}].value")
    found += schema_unknown_keys(get(schema, "items"), f"{location}.items")
    any_of = get(schema, "anyOf")
    for index, value in enumerate(any_of if isinstance(any_of, list) else []):
        found += schema_unknown_keys(value, f"{location}.any_of[{index}]")
    return found


def schema_semantic_issues(schema: Any, path: str) -> list[str]:
    if not isinstance(schema, dict):
        return []
    issues: list[str] = []
    properties = get(schema, "properties")
    if str(get(schema, "type", "")).upper() == "OBJECT" and not (isinstance(properties, dict) and properties):
        issues.append(field_issue(f"{path}.properties", "should be non-empty for OBJECT type"))
    if isinstance(properties, dict):
        for name, value in properties.items():
            issues += schema_semantic_issues(value, f'{path}.properties["{name}"]')
    issues += schema_semantic_issues(get(schema, "items"), f"{path}.items")
    return issues


def validate_tools(body: dict[str, Any]) -> None:
    tools = get(body, "tools")
    unknown: list[tuple[str, str]] = []
    issues: list[str] = []
    for t, tool in enumerate(tools if isinstance(tools, list) else []):
        declarations = get(tool, "functionDeclarations")
        for d, declaration in enumerate(declarations if isinstance(declarations, list) else []):
            parameters = get(declaration, "parameters")
            if parameters is None:
                continue  # no parameters, or parametersJsonSchema (JSON Schema, accepted as-is)
            location = f"tools[{t}].function_declarations[{d}].parameters"
            unknown += schema_unknown_keys(parameters, location)
            issues += schema_semantic_issues(parameters, location)
    if unknown:
        raise unknown_name_error(unknown)
    if issues:
        raise invalid("".join(issues))


def validate_generation_config(body: dict[str, Any]) -> None:
    config = thinking_config(body)
    if get(config, "thinkingBudget") is not None and get(config, "thinkingLevel") is not None:
        raise invalid("You can only set only one of thinking budget and thinking level.")


def current_turn_start(contents: list[Any]) -> int:
    for i in range(len(contents) - 1, -1, -1):
        if role_of(contents[i]) == "user" and not is_function_response_turn(contents[i]):
            return i
    return 0


def normalize_signature(value: Any) -> str:
    """Proto ``bytes`` JSON accepts standard and URL-safe base64, padded or not (the SDK re-encodes)."""
    return str(value).replace("-", "+").replace("_", "/").rstrip("=")


def validate_thought_signatures(contents: list[Any], model: str, state: FakeGeminiState) -> None:
    if not is_gemini_3(model):
        return
    for i in range(current_turn_start(contents), len(contents)):
        content = contents[i]
        calls = function_calls_of(content) if role_of(content) == "model" else []
        if not calls:
            continue
        signature = get(calls[0], "thoughtSignature")
        if not signature:
            name = get(get(calls[0], "functionCall"), "name")
            raise invalid(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                "to work correctly, and missing thought_signature may lead to degraded model performance. "
                f"Additional data, function call `default_api:{name}` , position {i + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
        issued = {normalize_signature(s) for s in state.signatures}
        for call in calls:
            value = get(call, "thoughtSignature")
            if value and value != SKIP_SIGNATURE and normalize_signature(value) not in issued:
                raise invalid("Corrupted thought signature.")


# --------------------------------------------------------------------------- response plan


@dataclass
class Plan:
    model: str
    response_id: str
    prompt_tokens: int
    cached: int
    thoughts: list[str]
    show_thoughts: bool
    text: list[str]
    calls: list[dict[str, Any]]  # whole functionCall parts (signature on the first)
    finish_reason: str
    finish_message: str | None = None
    safety_ratings: list[dict[str, Any]] | None = None
    blocked_prompt: bool = False
    signature: str | None = None  # gemini-3 text-reply signature
    drop_content_at_end: bool = False  # SAFETY / RECITATION / MALFORMED: final candidate has no content
    bad_usage: str | None = None  # #fake:bad_usage=KIND


def random_response_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(23))


def safety_ratings(blocked_category: str | None) -> list[dict[str, Any]]:
    ratings = []
    for category in SAFETY_CATEGORIES:
        rating: dict[str, Any] = {"category": category, "probability": "NEGLIGIBLE"}
        if category == blocked_category:
            rating = {"category": category, "probability": "HIGH", "blocked": True}
        ratings.append(rating)
    return ratings


def plan_response(body: dict[str, Any], model: str, scenario: Scenario, state: FakeGeminiState) -> Plan:
    prompt = count_prompt_tokens(body)
    config = thinking_config(body)
    plan = Plan(model=model, response_id=random_response_id(), prompt_tokens=prompt,
                cached=min(scenario.cached, prompt), thoughts=word_pieces(REASONING_WORDS, scenario.thinking),
                show_thoughts=get(config, "includeThoughts") is True, text=[], calls=[], finish_reason="STOP",
                bad_usage=scenario.bad_usage)
    if scenario.blocked_prompt:
        plan.thoughts = []
        plan.blocked_prompt = True
        plan.safety_ratings = safety_ratings("HARM_CATEGORY_DANGEROUS_CONTENT")
        return plan
    if scenario.safety:
        plan.finish_reason, plan.drop_content_at_end = "SAFETY", True
        plan.safety_ratings = safety_ratings("HARM_CATEGORY_DANGEROUS_CONTENT")
        return plan
    if scenario.malformed_call:
        name = declared_function_name(body)
        plan.finish_reason, plan.drop_content_at_end = "MALFORMED_FUNCTION_CALL", True
        plan.finish_message = f'Malformed function call: print(default_api.{name}(city=["Par'
        return plan
    if scenario.tools:
        name = declared_function_name(body)
        plan.calls = [{"functionCall": {"name": name, "args": dict(args)}} for args in TOOL_ARGS]
        plan.calls[0]["thoughtSignature"] = state.new_signature()
        plan.finish_message = FUNCTION_CALL_FINISH_MESSAGE
        return plan
    plan.text = word_pieces(REPLY_WORDS, len(REPLY_WORDS) if scenario.tokens is None else scenario.tokens)
    budget = get(get(body, "generationConfig", {}), "maxOutputTokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and len(plan.thoughts) + len(plan.text) > budget:
        plan.thoughts = plan.thoughts[:budget]
        plan.text = plan.text[:budget - len(plan.thoughts)]
        plan.finish_reason = "MAX_TOKENS"
    if scenario.max_tokens:
        plan.finish_reason = "MAX_TOKENS"
    if scenario.recitation:
        plan.text = plan.text[:len(plan.text) // 2]
        plan.finish_reason, plan.drop_content_at_end = "RECITATION", True
    if is_gemini_3(model) and not plan.drop_content_at_end:
        plan.signature = state.new_signature()
    return plan


def usage_metadata(plan: Plan, candidates: int, thoughts: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": plan.prompt_tokens}
    if candidates or plan.bad_usage:
        usage["candidatesTokenCount"] = malformed_count(plan.bad_usage, candidates)
    usage["totalTokenCount"] = plan.prompt_tokens + candidates + thoughts
    if plan.cached:
        usage["cachedContentTokenCount"] = plan.cached
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}]
    if plan.cached:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cached}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def final_usage(plan: Plan) -> dict[str, Any]:
    return usage_metadata(plan, len(plan.text) + len(plan.calls), len(plan.thoughts))


def envelope(plan: Plan, candidate: dict[str, Any] | None, usage: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if candidate is not None:
        body["candidates"] = [candidate]
    else:
        body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": plan.safety_ratings}
    body["usageMetadata"] = usage
    body["modelVersion"] = plan.model
    body["responseId"] = plan.response_id
    return body


def make_candidate(parts: list[dict[str, Any]] | None, plan: Plan | None) -> dict[str, Any]:
    """A candidate; ``plan`` given → this is the final one and carries the finish fields."""
    candidate: dict[str, Any] = {}
    if parts is not None:
        candidate["content"] = {"parts": parts, "role": "model"}
    if plan is not None:
        candidate["finishReason"] = plan.finish_reason
    candidate["index"] = 0
    if plan is not None and plan.finish_message:
        candidate["finishMessage"] = plan.finish_message
    if plan is not None and plan.safety_ratings:
        candidate["safetyRatings"] = plan.safety_ratings
    return candidate


def render_response(plan: Plan) -> dict[str, Any]:
    """The non-stream GenerateContentResponse."""
    if plan.blocked_prompt:
        return envelope(plan, None, usage_metadata(plan, 0, 0))
    parts: list[dict[str, Any]] = []
    if plan.show_thoughts and plan.thoughts:
        parts.append({"text": "".join(plan.thoughts), "thought": True})
    if plan.calls:
        parts += plan.calls
    elif plan.text or not plan.drop_content_at_end:
        text_part: dict[str, Any] = {"text": "".join(plan.text)}
        if plan.signature:
            text_part["thoughtSignature"] = plan.signature
        parts.append(text_part)
    return envelope(plan, make_candidate(parts or None, plan), final_usage(plan))


@dataclass
class Delta:
    parts: list[dict[str, Any]] | None
    candidates: int  # cumulative candidate tokens after this event
    thoughts: int  # cumulative thought tokens after this event


def stream_events(plan: Plan) -> list[dict[str, Any]]:
    """Every event of a complete stream; the last one carries finishReason."""
    deltas = stream_deltas(plan)
    return [render_event(plan, delta, final=i == len(deltas) - 1) for i, delta in enumerate(deltas)]


def stream_deltas(plan: Plan) -> list[Delta]:
    if plan.blocked_prompt:
        return [Delta(None, 0, 0)]
    deltas: list[Delta] = []
    thoughts = 0 if plan.show_thoughts else len(plan.thoughts)
    if plan.show_thoughts:
        for piece in plan.thoughts:
            thoughts += 1
            deltas.append(Delta([{"text": piece, "thought": True}], 0, thoughts))
    candidates = 0
    if plan.calls:
        deltas.append(Delta(plan.calls, len(plan.calls), thoughts))
        return deltas
    for piece in plan.text:
        candidates += 1
        deltas.append(Delta([{"text": piece}], candidates, thoughts))
    if plan.drop_content_at_end:
        deltas.append(Delta(None, candidates, thoughts))
    elif plan.signature:
        deltas.append(Delta([{"text": "", "thoughtSignature": plan.signature}], candidates, thoughts))
    elif not plan.text:
        deltas.append(Delta([{"text": ""}], candidates, thoughts))
    return deltas


def render_event(plan: Plan, delta: Delta, final: bool) -> dict[str, Any]:
    usage = usage_metadata(plan, delta.candidates, delta.thoughts)
    if plan.blocked_prompt:
        return envelope(plan, None, usage)
    return envelope(plan, make_candidate(delta.parts, plan if final else None), usage)


# --------------------------------------------------------------------------- stream writers


class StreamWriter(EventWriter):
    """Frames events as SSE or as Google's JSON-array stream, noticing client disconnects."""

    def __init__(self, request: web.Request, response: web.StreamResponse, *, sse: bool, lf: bool,
                 delay: float) -> None:
        super().__init__(request, response, delay)
        self.sse = sse
        self.separator = b"\n\n" if lf else b"\r\n\r\n"

    async def event(self, obj: dict[str, Any]) -> None:
        await self.pace()
        if self.sse:
            frame = b"data: " + compact_json(obj) + self.separator
        else:
            frame = (b"[" if not self.sent else b"\n,\r\n") + pretty_json(obj).rstrip(b"\n")
        await self.write(frame)
        self.sent += 1

    async def finish(self) -> None:
        if not self.sse:
            await self.write(b"\n]" if self.sent else b"[]")
        await self.response.write_eof()


def common_headers(content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "Vary": "Origin, X-Origin, Referer", "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "SAMEORIGIN", "X-XSS-Protection": "0"}


async def stream_response(request: web.Request, plan: Plan, scenario: Scenario, sse: bool,
                          state: FakeGeminiState) -> web.StreamResponse:
    events = stream_events(plan)
    content_type = "text/event-stream" if sse else "application/json; charset=UTF-8"
    headers = common_headers(content_type)
    if sse:
        headers["Content-Disposition"] = "attachment"
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    delay = scenario.delay if scenario.delay is not None else state.token_delay
    writer = StreamWriter(request, response, sse=sse, lf=scenario.lf, delay=delay)
    failing = scenario.error_mid or scenario.reset or scenario.truncate
    if not failing:
        for event in events:
            await writer.event(event)
        await writer.finish()
        return response
    deltas = stream_deltas(plan)
    cut = max(1, len(deltas) // 2) if len(deltas) > 1 else 1
    for delta in deltas[:cut]:
        await writer.event(render_event(plan, delta, final=False))
    if scenario.error_mid:
        await writer.event(mid_stream_error())
        await writer.finish()
    elif scenario.reset:
        abort_connection(request)
    else:  # truncate: a clean end without a finishReason
        await writer.finish()
    return response


async def json_response(request: web.Request, plan: Plan, scenario: Scenario) -> web.StreamResponse:
    if scenario.reset:
        abort_connection(request)
        raise ClientGone  # nothing more to send; not counted as a client cancellation
    payload = pretty_json(mid_stream_error() if scenario.error_mid else render_response(plan))
    if scenario.truncate:
        payload = payload[: len(payload) // 2]
    return web.Response(body=payload, headers=common_headers("application/json; charset=UTF-8"))


# --------------------------------------------------------------------------- handlers


def record(request: web.Request, state: FakeGeminiState, raw: bytes) -> Any:
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except ValueError:
        parsed = None
    state.requests.append(RecordedRequest(request.method, request.path, dict(request.query),
                                          Headers(request.headers.items()), parsed, raw))
    return parsed


def check_auth(request: web.Request, state: FakeGeminiState) -> None:
    if state.api_keys is None:
        return
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        raise GeminiError(403, "Method doesn't allow unregistered callers (callers without established identity). "
                               "Please use API Key or other form of API consumer identity to call this API.")
    if key not in state.api_keys:
        raise api_key_invalid()


def parse_body(raw: bytes, parsed: Any) -> Any:
    if parsed is None and raw.strip() != b"null":
        snippet = raw.decode(errors="replace")[:40]
        message = f"Invalid JSON payload received. Unexpected token.\n{snippet}\n^"
        raise invalid(message, [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                 "fieldViolations": [{"description": message}]}])
    return parsed


def split_model_method(name: str) -> tuple[str, str]:
    model, _, method = name.rpartition(":")
    return (model, method) if model else (name, "")


async def model_action(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    version = request.match_info["version"]
    model, method = split_model_method(request.match_info["name"])
    raw = await request.read()
    parsed = record(request, state, raw)
    if method not in ("generateContent", "streamGenerateContent", "countTokens"):
        return html_not_found(request)
    is_stream = method == "streamGenerateContent"
    sse = is_stream and request.query.get("alt") == "sse"
    try:
        check_auth(request, state)
        body = parse_body(raw, parsed)
        if model not in state.models:
            raise model_not_found(model, version, method)
        if method == "countTokens":
            return count_tokens(body)
        contents = check_request_shape(body)
        scenario = Scenario.parse(directive_text(contents))
        validate_contents(contents, scenario)
        validate_tools(body)
        validate_generation_config(body)
        validate_thought_signatures(contents, model, state)
    except GeminiError as exc:
        return exc.response(wrap_in_array=is_stream and not sse)

    async def respond() -> web.StreamResponse:
        if scenario.status is not None:
            error = status_error(scenario.status, model, version, method, scenario.retry_after)
            return error.response(wrap_in_array=is_stream and not sse)
        plan = plan_response(body, model, scenario, state)
        if is_stream:
            return await stream_response(request, plan, scenario, sse, state)
        return await json_response(request, plan, scenario)

    return await serve_scenario(request, state, scenario, is_stream, respond)


def count_tokens(body: Any) -> web.Response:
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    request_body = get(body, "generateContentRequest")
    total = count_prompt_tokens(request_body if isinstance(request_body, dict) else body)
    result = {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
    return web.Response(body=pretty_json(result), headers=common_headers("application/json; charset=UTF-8"))


def model_resource(model: str) -> dict[str, Any]:
    pro = "pro" in model
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": " ".join(w.capitalize() for w in model.split("-")),
        "description": f"Fake {model} served by the TokenHub simulator.",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent",
                                       "batchGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": pro or "2.5" in model or model.startswith("gemini-3"),
    }


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    record(request, state, b"")
    try:
        check_auth(request, state)
    except GeminiError as exc:
        return exc.response()
    body = {"models": [model_resource(m) for m in state.models]}
    return web.Response(body=pretty_json(body), headers=common_headers("application/json; charset=UTF-8"))


async def get_model(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    record(request, state, b"")
    model, method = split_model_method(request.match_info["name"])
    if method:
        return html_not_found(request)
    try:
        check_auth(request, state)
        if model not in state.models:
            raise GeminiError(404, f"models/{model} is not found for API version {request.match_info['version']}, "
                                   "or is not supported for getModel.")
    except GeminiError as exc:
        return exc.response()
    return web.Response(body=pretty_json(model_resource(model)),
                        headers=common_headers("application/json; charset=UTF-8"))


def html_not_found(request: web.Request) -> web.Response:
    return web.Response(status=404, text=NOT_FOUND_HTML.format(path=request.path), content_type="text/html",
                        charset="UTF-8")


# --------------------------------------------------------------------------- app


@web.middleware
async def google_not_found(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return html_not_found(request)


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "scaffolding on HTTPServer2"
    response.headers.setdefault("Server-Timing", f"gfet4t7; dur={elapsed_ms(request)}")


def create_app(api_keys: Iterable[str] | None = None, token_delay: float = 0.0,
               models: Iterable[str] | None = None) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeGeminiState."""
    state = FakeGeminiState(
        api_keys=set(api_keys) if api_keys is not None else None,
        token_delay=token_delay,
        models=tuple(models) if models is not None else DEFAULT_MODELS,
    )
    app = web.Application(middlewares=[stamp_start, google_not_found])
    install_state(app, STATE_KEY, state)
    app.on_response_prepare.append(add_common_headers)
    version = "{version:v1beta|v1}"
    app.router.add_get(f"/{version}/models", list_models)
    app.router.add_get(f"/{version}/models/{{name}}", get_model)
    app.router.add_post(f"/{version}/models/{{name}}", model_action)
    return app


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return directive_names(Scenario)
