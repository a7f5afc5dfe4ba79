"""A protocol-exact fake OpenAI Chat Completions upstream (aiohttp).

Used as the upstream for every OpenAI-protocol vendor in the gateway's tests and
shipped as the operator simulator.  Everything is deterministic except ids
(``chatcmpl-…``, ``call_…``, ``req_…``) and ``created``.

Usage::

    app = create_app(api_keys={"sk-test"}, token_delay=0.0)
    state: FakeOpenAIState = app["state"]      # also app[STATE_KEY]

Routes
------
``POST /v1/chat/completions`` and ``POST /chat/completions``; ``GET /v1/models``
and ``GET /models``.  Unknown routes answer OpenAI's ``Invalid URL (METHOD PATH)``
JSON error.  Every response carries ``x-request-id``, ``openai-version`` and
``openai-processing-ms``; successful chat responses (and 429s) carry
``x-ratelimit-*`` headers.

``state.requests`` records every request (``RecordedRequest``: method, path,
``headers`` — a dict with lower-case keys and case-insensitive lookup — parsed
``json`` or None, and ``raw`` bytes), including rejected ones.

Auth: ``Authorization: Bearer <key>``; a missing or unknown key is a 401 with
``code: "invalid_api_key"``.  With ``api_keys=None`` everything is accepted.
Invalid JSON, a missing ``model``, missing/empty ``messages``, a bad ``n`` or
``stream_options`` without ``stream`` are 400 ``invalid_request_error``.

Token accounting (identical for stream and non-stream)
-----------------------------------------------------
* ``prompt_tokens`` = for every message, 3 + the number of whitespace-separated
  words of its text (string content, ``text`` parts, plus the name and
  arguments of any ``tool_calls`` it carries).
* ``completion_tokens`` = number of generated pieces, summed over all ``n``
  choices.  A piece is one content word (a word plus its following space, the
  last word without one), one reasoning word, one tool-call header delta or one
  tool-call argument fragment.  ``reasoning_tokens`` is the reasoning part of
  it; ``total_tokens = prompt_tokens + completion_tokens``.
* The default reply is ``"Hello! This is a fake reply."`` (6 pieces); the words
  repeat cyclically for other lengths.  Reasoning text cycles through
  ``"Let me think about this step by step."``.
* ``max_completion_tokens`` (or ``max_tokens``) caps the pieces per choice
  (reasoning first, then content, then tool-call pieces: a call cut short keeps
  the argument fragments that fit); when it bites, ``finish_reason`` is
  ``"length"``.

Stream shape: ``data: {json}\\n\\n`` per chunk, no ``event:`` lines; first delta
``{"role":"assistant","content":"","refusal":null}``; one piece per chunk (one
choice per chunk, choices interleaved when ``n`` > 1); finish chunk with
``delta: {}``; a ``choices: []`` usage chunk only when
``stream_options.include_usage`` is true (then every other chunk has
``"usage": null``); ``data: [DONE]``.  Chunks carry OpenAI's ``obfuscation``
padding unless ``stream_options.include_obfuscation`` is false.  When a choice
starts with a tool call, the role delta is merged into the first tool-call delta
(``"content": null``), as real OpenAI does.

Scenario directives
-------------------
Written anywhere in the text of the LAST user message as ``#fake:NAME`` or
``#fake:NAME=VALUE`` (several allowed; an unknown name is a 400).

=====================  ======================================================
``tokens=N``           reply with exactly N content pieces
``length``             ``finish_reason: "length"``
``content_finish``     last content piece shares the chunk with finish_reason
``reasoning=N``        N ``reasoning_content`` pieces before the content
                       (DeepSeek/Kimi/GLM shape); non-stream puts
                       ``message.reasoning_content``
``tools``              two parallel calls of ``get_weather`` (or the request's
                       first tool) with ``{"city":"Paris"}``/``{"city":"Rome"}``;
                       arguments streamed in 6-char fragments (split mid-token)
``tool_whole``         one call whose whole arguments are in its first delta
``cached=N``           ``prompt_tokens_details.cached_tokens`` (clamped to prompt)
``deepseek_usage``     add ``prompt_cache_hit_tokens``/``prompt_cache_miss_tokens``
``usage_on_last``      usage rides on the final finish chunk, no usage chunk
``no_usage``           never send usage
``bad_usage=KIND``     a malformed ``completion_tokens``: ``negative`` (-7),
                       ``float`` (12.5) or ``string`` ("12")
``keepalive``          ``: keep-alive`` comments and blank lines in the stream
                       (non-stream: leading blank lines before the JSON body)
``crlf``               ``\\r\\n`` line endings in the stream
``status=CODE``        HTTP CODE with OpenAI's error body for it (429 adds
                       ``retry-after`` and ``x-ratelimit-*``)
``retry_after=S``      ``retry-after`` value for 429/503/529
``error_mid``          stream some content, then ``data: {"error":…}``, close
                       without ``[DONE]`` (non-stream: 200 with an error body)
``reset``              stream some content, then abort the TCP connection
                       (non-stream: abort before answering)
``truncate``           stream some content, then end cleanly without
                       finish_reason/usage/[DONE] (non-stream: half a JSON body)
``malformed``          one invalid-JSON ``data:`` line mid-stream, then carry on
                       (non-stream: a body that is not valid JSON)
``slow_first=S``       wait S seconds before the first byte
``delay=S``            wait S seconds between stream chunks (overrides
                       ``token_delay``)
``hang``               never answer; wait for the client to go away
``echo_model=ID``      report ID as the response ``model``
``overreport=N``       a misbehaving upstream: report N more prompt and N more
                       completion tokens than were used (beyond ``max_tokens``)
=====================  ======================================================

Cancellation: a request whose client goes away before the response is complete
increments ``cancelled_requests`` (and ``cancelled_streams`` for streams);
``active_requests``/``active_streams`` count in-flight ones.

The plumbing shared with the other fakes (``Headers``/``RecordedRequest``
recording, the state's counters, disconnect handling, ``#fake:`` parsing) lives
in :mod:`tokenhub.simulator.common`; the names that used to be defined here
(``Headers``, ``RecordedRequest``, ``DIRECTIVE_RE``, ``ClientGone`` ...) are
re-exported.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

# The shared plumbing lives in common; ``X as X`` keeps the names that used to be defined here importable.
from tokenhub.simulator.common import ABORTED_KEY as ABORTED_KEY
from tokenhub.simulator.common import (
    ALNUM,
    REASONING_WORDS,
    REPLY_WORDS,
    ClientGone,
    Directives,
    EventWriter,
    RecordedRequest,
    TrackedState,
    abort_connection,
    directive_names,
    elapsed_ms,
    install_state,
    malformed_count,
    random_id,
    read_json,
    record_request,
    serve_scenario,
    stamp_start,
    start_event_stream,
    word_pieces,
)
from tokenhub.simulator.common import DIRECTIVE_RE as DIRECTIVE_RE
from tokenhub.simulator.common import DISCONNECT_POLL_SECONDS as DISCONNECT_POLL_SECONDS
from tokenhub.simulator.common import STARTED_KEY as STARTED_KEY
from tokenhub.simulator.common import Headers as Headers
from tokenhub.simulator.common import client_gone as client_gone
from tokenhub.simulator.common import sleep_unless_gone as sleep_unless_gone
from tokenhub.simulator.common import tracked as tracked
from tokenhub.simulator.common import wait_until_gone as wait_until_gone

__all__ = [
    "STATE_KEY",
    "FakeOpenAIState",
    "RecordedRequest",
    "Scenario",
    "create_app",
]

DEFAULT_MODELS = ("gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "o4-mini")
DEFAULT_TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = ('{"city":"Paris"}', '{"city":"Rome"}')
ARGUMENT_FRAGMENT_SIZE = 6
SYSTEM_FINGERPRINT = "fp_f4k3d0e5a1"


# --------------------------------------------------------------------------- state


@dataclass
class FakeOpenAIState(TrackedState[RecordedRequest]):
    """``requests``, the ``active_*``/``cancelled_*`` counters and ``reset()`` come from TrackedState."""

    api_keys: set[str] | None = None
    token_delay: float = 0.0
    models: tuple[str, ...] = DEFAULT_MODELS


STATE_KEY = web.AppKey("tokenhub_fake_openai_state", FakeOpenAIState)


# --------------------------------------------------------------------------- errors


class FakeAPIError(Exception):
    """An error answered as an OpenAI JSON error body."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.body),
            content_type="application/json",
            headers=self.headers,
        )


def _ratelimit_headers(remaining_requests: int = 9999, reset_requests: str = "6ms") -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-limit-tokens": "30000000",
        "x-ratelimit-remaining-requests": str(remaining_requests),
        "x-ratelimit-remaining-tokens": "29999000" if remaining_requests else "0",
        "x-ratelimit-reset-requests": reset_requests,
        "x-ratelimit-reset-tokens": "0s",
    }


def status_error(status: int, model: str, retry_after: str | None = None) -> FakeAPIError:
    """The realistic OpenAI(-compatible) error for an HTTP status."""
    retry = {"retry-after": retry_after} if retry_after is not None else {}
    if status == 400:
        return FakeAPIError(400, "Invalid request (simulated by #fake:status=400).")
    if status == 401:
        return FakeAPIError(401, "Incorrect API key provided: sk-fake***. You can find your API key "
                            "at https://platform.openai.com/account/api-keys.", code="invalid_api_key")
    if status == 403:
        return FakeAPIError(403, "Country, region, or territory not supported", "request_forbidden",
                            code="unsupported_country_region_territory")
    if status == 404:
        return FakeAPIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                            code="model_not_found")
    if status == 413:
        return FakeAPIError(413, "Request too large. Reduce the size of your request.",
                            code="request_too_large")
    if status == 429:
        headers = {**_ratelimit_headers(0, "1s"), "retry-after": retry_after or "1"}
        return FakeAPIError(
            429,
            f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
            "Limit 10000, Used 10000, Requested 1. Please try again in 1s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more.",
            "requests", code="rate_limit_exceeded", headers=headers,
        )
    if status == 500:
        return FakeAPIError(500, "The server had an error while processing your request. Sorry about that!",
                            "server_error")
    if status == 502:  # what OpenAI's edge actually returns: note the integer code
        return FakeAPIError(502, "Bad gateway.", "cf_bad_gateway", code=502)
    if status == 503:
        return FakeAPIError(503, "The engine is currently overloaded, please try again later.",
                            "server_error", code="service_unavailable", headers=retry)
    if status == 504:
        return FakeAPIError(504, "Gateway timeout.", "server_error", code="gateway_timeout")
    if status == 529:
        return FakeAPIError(529, "Overloaded", "overloaded_error", code="overloaded", headers=retry)
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return FakeAPIError(status, f"Simulated HTTP {status} error.", type_, headers=retry)


def mid_stream_error() -> dict[str, Any]:
    return {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                      "type": "server_error", "param": None, "code": None}}


# --------------------------------------------------------------------------- directives


@dataclass
class Scenario(Directives):
    """The parsed ``#fake:`` directives of a request (see the module docstring)."""

    tokens: int | None = None
    length: bool = False
    content_finish: bool = False
    reasoning: int = 0
    tools: bool = False
    tool_whole: bool = False
    cached: int = 0
    deepseek_usage: bool = False
    usage_on_last: bool = False
    no_usage: bool = False
    bad_usage: str | None = None
    keepalive: bool = False
    crlf: bool = False
    status: int | None = None
    retry_after: str | None = None
    error_mid: bool = False
    reset: bool = False
    truncate: bool = False
    malformed: bool = False
    slow_first: float = 0.0
    delay: float | None = None
    hang: bool = False
    echo_model: str | None = None
    overreport: int = 0

    @classmethod
    def directive_error(cls, message: str, code: str) -> FakeAPIError:
        return FakeAPIError(400, message, param="messages", code=code)


# --------------------------------------------------------------------------- request parsing


def message_text(message: Any) -> str:
    """All text of a message (content strings/text parts, tool-call names and arguments)."""
    if not isinstance(message, dict):
        return ""
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        texts.extend(p["text"] for p in content
                     if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            texts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
    return " ".join(texts)


def count_prompt_tokens(messages: list[Any]) -> int:
    return sum(3 + len(message_text(m).split()) for m in messages)


def last_user_text(messages: list[Any]) -> str:
    """The directives' text: the last user message, unless tool results came after it (a tool loop's
    next step answers in plain text, as the Anthropic and Gemini fakes do)."""
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def validate_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FakeAPIError(400, "Invalid type for request body: expected an object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise FakeAPIError(400, "you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise FakeAPIError(400, "Missing required parameter: 'messages'.", param="messages",
                           code="missing_required_parameter")
    if not isinstance(messages, list):
        raise FakeAPIError(400, "Invalid type for 'messages': expected an array.", param="messages",
                           code="invalid_type")
    if not messages:
        raise FakeAPIError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                           "but got an empty array instead.", param="messages", code="empty_array")
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128):
        raise FakeAPIError(400, f"Invalid value for 'n': {n!r}. Expected an integer between 1 and 128.",
                           param="n", code="invalid_value")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise FakeAPIError(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                           param="stream_options")
    return body


# --------------------------------------------------------------------------- completion plan


@dataclass
class ToolCallPlan:
    index: int
    id: str
    name: str
    arguments: str
    fragments: list[str]  # empty: the whole arguments travel in the header delta

    @property
    def tokens(self) -> int:
        return 1 + len(self.fragments)


@dataclass
class ChoicePlan:
    index: int
    reasoning: list[str]
    content: list[str]
    tool_calls: list[ToolCallPlan]
    finish_reason: str

    @property
    def tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + sum(c.tokens for c in self.tool_calls)

    @property
    def text(self) -> str | None:
        if self.tool_calls and not self.content:
            return None
        return "".join(self.content)


@dataclass
class CompletionPlan:
    id: str
    created: int
    model: str
    choices: list[ChoicePlan]
    usage: dict[str, Any]


def split_fragments(text: str, size: int = ARGUMENT_FRAGMENT_SIZE) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def tool_name(body: dict[str, Any]) -> str:
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        function = tools[0].get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return function["name"]
    return DEFAULT_TOOL_NAME


def plan_tool_calls(body: dict[str, Any], scenario: Scenario) -> list[ToolCallPlan]:
    name = tool_name(body)
    if scenario.tools:
        return [ToolCallPlan(i, random_id("call_", 24), name, args, split_fragments(args))
                for i, args in enumerate(TOOL_ARGUMENTS)]
    if scenario.tool_whole:
        return [ToolCallPlan(0, random_id("call_", 24), name, TOOL_ARGUMENTS[0], [])]
    return []


def truncate_tool_calls(calls: list[ToolCallPlan], budget: int) -> list[ToolCallPlan]:
    """The calls that fit in ``budget`` pieces, the last one cut mid-arguments (as a real model stops)."""
    kept: list[ToolCallPlan] = []
    for call in calls:
        if budget < 1:
            break
        if call.fragments:
            fragments = call.fragments[:budget - 1]
            call = ToolCallPlan(call.index, call.id, call.name, "".join(fragments), fragments)
        kept.append(call)
        budget -= call.tokens
    return kept


def token_budget(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def plan_choice(index: int, body: dict[str, Any], scenario: Scenario) -> ChoicePlan:
    tool_calls = plan_tool_calls(body, scenario)
    reasoning = word_pieces(REASONING_WORDS, scenario.reasoning)
    if tool_calls:
        content: list[str] = []
    else:
        content = word_pieces(REPLY_WORDS, len(REPLY_WORDS) if scenario.tokens is None else scenario.tokens)
    finish = "tool_calls" if tool_calls else "stop"
    budget = token_budget(body)
    if budget is not None and len(reasoning) + len(content) + sum(c.tokens for c in tool_calls) > budget:
        reasoning = reasoning[:budget]
        content = content[:budget - len(reasoning)]
        tool_calls = truncate_tool_calls(tool_calls, budget - len(reasoning) - len(content))
        finish = "length"
    if scenario.length:
        finish = "length"
    return ChoicePlan(index, reasoning, content, tool_calls, finish)


def build_usage(prompt_tokens: int, choices: list[ChoicePlan], scenario: Scenario) -> dict[str, Any]:
    prompt_tokens += scenario.overreport
    completion = sum(c.tokens for c in choices) + scenario.overreport
    reasoning = sum(len(c.reasoning) for c in choices)
    cached = min(scenario.cached, prompt_tokens)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }
    if scenario.deepseek_usage:
        usage["prompt_cache_hit_tokens"] = cached
        usage["prompt_cache_miss_tokens"] = prompt_tokens - cached
    usage["completion_tokens"] = malformed_count(scenario.bad_usage, completion)
    return usage


def plan_completion(body: dict[str, Any], scenario: Scenario) -> CompletionPlan:
    choices = [plan_choice(i, body, scenario) for i in range(body.get("n") or 1)]
    return CompletionPlan(
        id=random_id("chatcmpl-", 29),
        created=int(time.time()),
        model=scenario.echo_model or body["model"],
        choices=choices,
        usage=build_usage(count_prompt_tokens(body["messages"]), choices, scenario),
    )


# --------------------------------------------------------------------------- non-stream rendering


def render_message(choice: ChoicePlan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None, "annotations": []}
    if choice.reasoning:
        message["reasoning_content"] = "".join(choice.reasoning)
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in choice.tool_calls
        ]
    return message


def render_completion(plan: CompletionPlan, scenario: Scenario) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "choices": [
            {"index": c.index, "message": render_message(c), "logprobs": None, "finish_reason": c.finish_reason}
            for c in plan.choices
        ],
        "usage": plan.usage,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if scenario.no_usage:
        del body["usage"]
    return body


# --------------------------------------------------------------------------- stream rendering


@dataclass
class DeltaEvent:
    index: int
    delta: dict[str, Any]
    finish_reason: str | None = None


def tool_header_delta(call: ToolCallPlan) -> dict[str, Any]:
    arguments = "" if call.fragments else call.arguments
    return {"index": call.index, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": arguments}}


def choice_deltas(choice: ChoicePlan, scenario: Scenario) -> list[DeltaEvent]:
    """The deltas of one choice, from the role delta to the finish delta."""
    deltas: list[dict[str, Any]] = []
    if choice.reasoning or not choice.tool_calls:
        deltas.append({"role": "assistant", "content": "", "refusal": None})
    deltas += [{"reasoning_content": piece} for piece in choice.reasoning]
    deltas += [{"content": piece} for piece in choice.content]
    for call in choice.tool_calls:
        header = {"tool_calls": [tool_header_delta(call)]}
        if not deltas:  # real OpenAI merges the role into the first tool-call delta
            header = {"role": "assistant", "content": None, **header, "refusal": None}
        deltas.append(header)
        deltas += [{"tool_calls": [{"index": call.index, "function": {"arguments": fragment}}]}
                   for fragment in call.fragments]
    events = [DeltaEvent(choice.index, d) for d in deltas]
    if scenario.content_finish and choice.content:
        events[-1].finish_reason = choice.finish_reason
    else:
        events.append(DeltaEvent(choice.index, {}, choice.finish_reason))
    return events


def interleave(lists: list[list[DeltaEvent]]) -> list[DeltaEvent]:
    out: list[DeltaEvent] = []
    for i in range(max(len(events) for events in lists)):
        out += [events[i] for events in lists if i < len(events)]
    return out


def obfuscation(seq: int) -> str:
    """Deterministic stand-in for OpenAI's random-length `obfuscation` padding."""
    return ALNUM[seq % 13:seq % 13 + 1 + (seq * 7) % 12]


@dataclass
class ChunkRenderer:
    plan: CompletionPlan
    include_usage: bool
    include_obfuscation: bool
    _seq: int = 0

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": self.plan.id,
            "object": "chat.completion.chunk",
            "created": self.plan.created,
            "model": self.plan.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if self.include_usage or usage is not None:
            data["usage"] = usage
        if self.include_obfuscation:
            data["obfuscation"] = obfuscation(self._seq)
        self._seq += 1
        return orjson.dumps(data)

    def delta_chunk(self, event: DeltaEvent, usage: dict[str, Any] | None = None) -> bytes:
        choice = {"index": event.index, "delta": event.delta, "logprobs": None, "finish_reason": event.finish_reason}
        return self.chunk([choice], usage)


@dataclass
class StreamScript:
    """The data payloads of a stream, split where a failure directive may strike."""

    content: list[bytes]  # role + piece chunks
    tail: list[bytes]  # finish chunk(s), usage chunk, [DONE]


def stream_script(plan: CompletionPlan, scenario: Scenario, stream_options: dict[str, Any]) -> StreamScript:
    include_usage = bool(stream_options.get("include_usage")) and not scenario.no_usage
    renderer = ChunkRenderer(plan, include_usage, stream_options.get("include_obfuscation", True) is not False)
    events = interleave([choice_deltas(c, scenario) for c in plan.choices])
    last_finish = max(i for i, e in enumerate(events) if e.finish_reason is not None)
    payloads: list[bytes] = []
    for i, event in enumerate(events):
        usage = plan.usage if include_usage and scenario.usage_on_last and i == last_finish else None
        payloads.append(renderer.delta_chunk(event, usage))
    if include_usage and not scenario.usage_on_last:
        payloads.append(renderer.chunk([], plan.usage))
    payloads.append(b"[DONE]")
    first_finish = min(i for i, e in enumerate(events) if e.finish_reason is not None)
    return StreamScript(payloads[:first_finish], payloads[first_finish:])


class SSEWriter(EventWriter):
    """Frames SSE events onto a prepared StreamResponse, noticing client disconnects."""

    def __init__(self, request: web.Request, response: web.StreamResponse, *,
                 crlf: bool, keepalive: bool, delay: float) -> None:
        super().__init__(request, response, delay)
        self.newline = b"\r\n" if crlf else b"\n"
        self.keepalive = keepalive

    async def data(self, payload: bytes) -> None:
        await self.pace()
        nl = self.newline
        frame = b"data: " + payload + nl + nl
        if self.keepalive:
            frame = b": keep-alive" + nl + nl + frame + (nl if self.sent % 2 else b"")
        await self.write(frame)
        self.sent += 1


# --------------------------------------------------------------------------- handlers


def success_headers() -> dict[str, str]:
    return _ratelimit_headers()


async def stream_response(request: web.Request, plan: CompletionPlan, scenario: Scenario,
                          body: dict[str, Any], state: FakeOpenAIState) -> web.StreamResponse:
    stream_options = body.get("stream_options") or {}
    script = stream_script(plan, scenario, stream_options if isinstance(stream_options, dict) else {})
    response = await start_event_stream(request, success_headers())
    delay = scenario.delay if scenario.delay is not None else state.token_delay
    writer = SSEWriter(request, response, crlf=scenario.crlf, keepalive=scenario.keepalive, delay=delay)
    failing = scenario.error_mid or scenario.reset or scenario.truncate
    cut = max(2, len(script.content) // 2) if failing or scenario.malformed else len(script.content)
    for payload in script.content[:cut]:
        await writer.data(payload)
    if scenario.malformed:
        await writer.data(b'{"id":"' + plan.id.encode() + b'","object":"chat.completion.chunk","choices":[{"ind')
    if scenario.error_mid:
        await writer.data(orjson.dumps(mid_stream_error()))
    elif scenario.reset:
        abort_connection(request)
        return response
    if failing:
        await response.write_eof()
        return response
    for payload in script.content[cut:] + script.tail:
        await writer.data(payload)
    await response.write_eof()
    return response


async def json_response(request: web.Request, plan: CompletionPlan, scenario: Scenario) -> web.StreamResponse:
    payload = orjson.dumps(render_completion(plan, scenario))
    if scenario.reset:
        abort_connection(request)
        raise ClientGone  # nothing more to send; not counted as a client cancellation
    if scenario.error_mid:
        payload = orjson.dumps(mid_stream_error())
    elif scenario.malformed:
        payload = payload[:-1] + b","
    elif scenario.truncate:
        payload = payload[: len(payload) // 2]
    if not scenario.keepalive and not scenario.truncate:
        return web.Response(body=payload, content_type="application/json", headers=success_headers())
    response = web.StreamResponse(headers={"Content-Type": "application/json", **success_headers()})
    await response.prepare(request)
    if scenario.keepalive:  # DeepSeek sends blank lines while a non-stream request is queued
        for _ in range(3):
            await response.write(b"\n")
    await response.write(payload)
    await response.write_eof()
    return response


async def read_body(request: web.Request, state: FakeOpenAIState) -> Any:
    recorded, _ = await read_json(request, state)
    parsed = recorded.json
    if parsed is None and recorded.raw.strip() != b"null":
        raise FakeAPIError(400, "We could not parse the JSON body of your request. (HINT: This likely means "
                           "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                           "payload, but what was sent was not valid JSON.)")
    return parsed


def check_auth(request: web.Request, state: FakeOpenAIState) -> None:
    if state.api_keys is None:
        return
    authorization = request.headers.get("Authorization", "")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise FakeAPIError(401, "You didn't provide an API key. You need to provide your API key in an "
                           "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                           code="invalid_api_key")
    if key.strip() not in state.api_keys:
        hint = key.strip()[:3] + "*" * 4 + key.strip()[-4:]
        raise FakeAPIError(401, f"Incorrect API key provided: {hint}. You can find your API key at "
                           "https://platform.openai.com/account/api-keys.", code="invalid_api_key")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        body = await read_body(request, state)
        check_auth(request, state)
        body = validate_body(body)
        scenario = Scenario.parse(last_user_text(body["messages"]))
    except FakeAPIError as exc:
        return exc.response()
    is_stream = bool(body.get("stream"))

    async def respond() -> web.StreamResponse:
        if scenario.status is not None:
            return status_error(scenario.status, body["model"], scenario.retry_after).response()
        plan = plan_completion(body, scenario)
        if is_stream:
            return await stream_response(request, plan, scenario, body, state)
        return await json_response(request, plan, scenario)

    return await serve_scenario(request, state, scenario, is_stream, respond)


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    record_request(request, state)
    try:
        check_auth(request, state)
    except FakeAPIError as exc:
        return exc.response()
    data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"} for m in state.models]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


# --------------------------------------------------------------------------- app


@web.middleware
async def openai_not_found(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        return FakeAPIError(exc.status, f"Invalid URL ({request.method} {request.path})").response()


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("x-request-id", "req_" + secrets.token_hex(16))
    response.headers.setdefault("openai-version", "2020-10-01")
    response.headers.setdefault("openai-processing-ms", str(elapsed_ms(request)))


def create_app(api_keys: Iterable[str] | None = None, token_delay: float = 0.0,
               models: Iterable[str] | None = None) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeOpenAIState."""
    state = FakeOpenAIState(
        api_keys=set(api_keys) if api_keys is not None else None,
        token_delay=token_delay,
        models=tuple(models) if models is not None else DEFAULT_MODELS,
    )
    app = web.Application(middlewares=[stamp_start, openai_not_found])
    install_state(app, STATE_KEY, state)
    app.on_response_prepare.append(add_common_headers)
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/chat/completions", chat_completions)
        app.router.add_get(f"{prefix}/models", list_models)
    return app


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return directive_names(Scenario)
