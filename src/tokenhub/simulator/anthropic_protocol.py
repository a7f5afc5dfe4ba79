"""A protocol-exact fake Anthropic Messages API upstream (aiohttp).

The Anthropic counterpart of :mod:`tokenhub.simulator.openai_protocol`: used as the
upstream for Anthropic-protocol vendors in the gateway's tests and shipped as the
operator simulator.  Everything is deterministic except ids (``msg_…``,
``toolu_…``, ``req_…``) and the per-app signing key behind thinking signatures.

Usage::

    app = create_app(api_keys={"sk-ant-test"}, token_delay=0.0)
    state: FakeAnthropicState = app["state"]      # also app[STATE_KEY]

Routes
------
``POST /v1/messages`` (``?beta=true`` and any other query string accepted),
``POST /v1/messages/count_tokens`` → ``{"input_tokens": N}``, ``GET /v1/models``
and ``GET /v1/models/{id}``.  Unknown routes answer a 404 ``not_found_error``.
Every response carries ``request-id``; successful messages responses (and 429s)
carry ``anthropic-ratelimit-*`` headers.

Errors always use Anthropic's body
``{"type":"error","error":{"type":…,"message":…},"request_id":"req_…"}`` with the
same id in the ``request-id`` header.

``state.requests`` records every request (``RecordedRequest``: method, path,
``headers`` with case-insensitive lookup, parsed ``json`` or None, ``raw`` bytes),
including rejected ones.

Auth: ``x-api-key: <key>`` or ``Authorization: Bearer <key>`` (anthropic SDK 2.x
sends the API key as a Bearer token); missing or unknown → 401
``authentication_error``.  With ``api_keys=None`` everything is accepted.  The
``anthropic-version`` header is required (any ``YYYY-MM-DD`` value; the SDK sends
``2023-06-01`` or, from 2.x, ``2026-10-21``), else 400.

Validations (400 ``invalid_request_error``, with the real API's wording)
------------------------------------------------------------------------
* invalid JSON; missing ``model`` / ``max_tokens`` / ``messages``; ``max_tokens`` < 0;
  empty ``messages``; a role other than ``user``/``assistant`` (``system`` too,
  unless ``create_app(allow_system_role=True)`` — SDK 2.x types allow it);
* consecutive same-role messages are accepted and merged into one turn (as the
  API documents); the first turn must be ``user``; a user message with empty
  content; empty or whitespace-only text blocks;
* every ``tool_use`` of an assistant turn must be answered by ``tool_result``
  blocks at the start of the next (user) turn; a ``tool_result`` whose id has no
  ``tool_use`` in the previous turn; ``tool_use.id`` must match ``^[a-zA-Z0-9_-]+$``;
* ``temperature`` outside 0..1;
* thinking ``{"type":"enabled"}``: ``budget_tokens`` < 1024 or >= ``max_tokens``;
  thinking (enabled or adaptive) with ``tool_choice`` any/tool, or with a
  ``temperature`` other than 1; the last assistant turn containing ``tool_use``
  must start with a ``thinking``/``redacted_thinking`` block;
* a ``thinking`` block whose ``signature`` (or a ``redacted_thinking`` block whose
  ``data``) was not issued by this app: signatures are an HMAC of the thinking
  text under ``state.signing_key``, so editing the text or the signature fails.

Token accounting (identical for stream and non-stream)
-----------------------------------------------------
* Total input = words of ``system`` + for every message 3 + the words of its text
  (text blocks/strings, ``tool_use`` name and JSON input, ``tool_result`` text,
  ``thinking`` text) + for every tool the words of its name and description.
  ``count_tokens`` returns that total.
* ``#fake:cache_read=N`` / ``#fake:cache_write=N`` move N of them (clamped) into
  ``cache_read_input_tokens`` / ``cache_creation_input_tokens``;
  ``input_tokens`` is the remainder (Anthropic's additive semantics).  Cache
  writes land in ``cache_creation.ephemeral_1h_input_tokens`` when any
  ``cache_control`` in the request has ``ttl: "1h"``, else in the 5m bucket.
* ``output_tokens`` = number of generated pieces: one per ``text_delta``, one per
  ``thinking_delta`` (thinking pieces also count when ``display: "omitted"``
  hides them), one per ``tool_use`` block plus one per non-empty
  ``input_json_delta``, one per ``redacted_thinking`` block.
  ``signature_delta`` and the leading empty ``input_json_delta`` are free.
* Server tools: a request with a ``web_search_*`` or ``web_fetch_*`` tool gets
  ``usage.server_tool_use: {"web_search_requests": N, "web_fetch_requests": M}``
  (both always, as the API does; zeros in ``message_start``, the counts in
  ``message_delta``), N and M the uses actually run (at most ``max_uses``).
  A ``server_tool_use`` block costs output tokens like a ``tool_use`` block;
  result blocks cost none.  ``max_uses`` must be a positive integer (400).
* Default reply ``"Hello! This is a fake reply."`` (6 pieces), words cycling for
  other lengths; thinking text cycles ``"Let me think about this step by step."``.
* ``max_tokens`` caps the pieces (thinking first, then text; not tool calls);
  when it bites ``stop_reason`` is ``"max_tokens"``.
* When the request enables thinking (``enabled`` or ``adaptive``) the reply
  starts with a thinking block of 8 pieces unless ``#fake:thinking=N`` says
  otherwise (``=0`` suppresses it) — as the real API always emits one.

Scenario directives
-------------------
Written in the text of the LAST user message (text blocks or ``tool_result``
text) as ``#fake:NAME`` or ``#fake:NAME=VALUE``; an unknown name is a 400.
``count_tokens`` ignores directives.

=====================  ======================================================
``tokens=N``           N text pieces (with ``tools``: a text block before them)
``tools``              two ``tool_use`` blocks of ``get_weather`` (or the
                       request's first tool) with ``{"city": "Paris"}`` /
                       ``{"city": "Rome"}``; ``partial_json`` starts with ``""``
                       then fragments split mid-token; ``stop_reason: tool_use``
``tool_noargs``        one zero-argument ``tool_use`` (``get_time`` or the
                       request's first tool), ``input: {}``, no deltas at all
``thinking=N``         N thinking pieces then a ``signature_delta`` (only when
                       the request enables thinking)
``redacted_thinking``  a ``redacted_thinking`` block first (thinking enabled)
``max_tokens``         ``stop_reason: "max_tokens"``
``stop_sequence``      ``stop_reason: "stop_sequence"``, ``stop_sequence`` = the
                       request's first ``stop_sequences`` entry (or null)
``refusal``            ``stop_reason: "refusal"`` with ``stop_details``
``pause_turn``         ``stop_reason: "pause_turn"``
``cache_read=N``       see token accounting
``cache_write=N``      see token accounting
``web_search=N``       N searches when the request has a ``web_search_*``
                       tool: per search a ``server_tool_use`` block
                       (``name: "web_search"``, ``input: {"query"}``) and a
                       ``web_search_tool_result`` (one ``web_search_result``);
                       searches past the tool's ``max_uses`` get the result
                       error ``max_uses_exceeded`` and are not counted
``web_fetch=N``        the same for a ``web_fetch_*`` tool (``input: {"url"}``,
                       a ``web_fetch_result`` document, or
                       ``web_fetch_tool_result_error``)
``bad_usage=KIND``     a malformed ``output_tokens`` (message_delta and the
                       final message): ``negative`` (-7), ``float`` (12.5) or
                       ``string`` ("12")
``status=CODE``        HTTP CODE with Anthropic's error body (429 adds
                       ``retry-after`` and ``anthropic-ratelimit-*``; 529 is
                       ``overloaded_error``)
``retry_after=S``      ``retry-after`` value for 429/500/529
``error_mid``          stream some content, then ``event: error`` with
                       ``overloaded_error``, then close (non-stream: HTTP 200
                       whose body is the error object)
``reset``              stream some content, then abort the TCP connection
                       (non-stream: abort before answering)
``truncate``           stream some content, then end cleanly without
                       ``content_block_stop``/``message_delta``/``message_stop``
                       (non-stream: half a JSON body)
``slow_first=S``       wait S seconds before the first byte
``delay=S``            wait S seconds between SSE events (overrides
                       ``token_delay``)
``hang``               never answer; wait for the client to go away
``ping``               an extra ``event: ping`` between every two events
``crlf``               ``\\r\\n`` line endings in the stream
``echo_model=ID``      report ID as the response ``model``
=====================  ======================================================

Stream shape: ``event: <type>\\ndata: <json>\\n\\n``.  ``message_start`` (content
``[]``, ``stop_reason`` null, full usage with ``output_tokens: 1``); per block
``content_block_start`` / ``content_block_delta``… / ``content_block_stop`` with
its ``index``; one ``event: ping`` (``{"type": "ping"}``) right after the first
``content_block_start``, as the real API sends; ``message_delta`` with
``stop_reason``/``stop_sequence`` and cumulative usage (``input_tokens``,
``cache_creation_input_tokens``, ``cache_read_input_tokens``, ``output_tokens``);
``message_stop``.

Cancellation: a request whose client goes away before the response is complete
increments ``cancelled_requests`` (and ``cancelled_streams`` for streams);
``active_requests``/``active_streams`` count in-flight ones.

The plumbing shared with the other fakes (request recording, the state's
counters, disconnect handling, ``#fake:`` parsing) lives in
:mod:`tokenhub.simulator.common`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

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
    install_state,
    malformed_count,
    random_id,
    read_json,
    record_request,
    serve_scenario,
    start_event_stream,
    word_pieces,
)

__all__ = [
    "STATE_KEY",
    "FakeAnthropicState",
    "RecordedRequest",
    "Scenario",
    "create_app",
    "sign_thinking",
]

DEFAULT_MODELS = ("claude-opus-4-7", "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6", "claude-sonnet-4-5")
DEFAULT_TOOL_NAME = "get_weather"
DEFAULT_NOARG_TOOL_NAME = "get_time"
TOOL_INPUTS: tuple[dict[str, Any], ...] = ({"city": "Paris"}, {"city": "Rome"})
FRAGMENT_SIZES = (3, 7, 1, 5, 2, 9, 4)  # partial_json split points cycle through these
DEFAULT_THINKING_PIECES = len(REASONING_WORDS)
MIN_THINKING_BUDGET = 1024
TOOL_USE_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EXTENDED_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


# --------------------------------------------------------------------------- state


@dataclass
class FakeAnthropicState(TrackedState[RecordedRequest]):
    """``requests``, the ``active_*``/``cancelled_*`` counters and ``reset()`` come from TrackedState.

    ``reset()`` leaves issued thinking signatures valid (they are checked by HMAC,
    ``issued_signatures`` is informational).
    """

    api_keys: set[str] | None = None
    token_delay: float = 0.0
    models: tuple[str, ...] = DEFAULT_MODELS
    allow_system_role: bool = False
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    issued_signatures: set[str] = field(default_factory=set)


STATE_KEY = web.AppKey("tokenhub_fake_anthropic_state", FakeAnthropicState)


def sign_thinking(key: bytes, thinking: str) -> str:
    """The signature this fake issues for a thinking text (opaque base64, like the real ones)."""
    mac = hmac.new(key, b"thinking\x00" + thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"\x12\x08fake" + mac).decode()


def redacted_data(key: bytes) -> str:
    nonce = secrets.token_bytes(24)
    mac = hmac.new(key, b"redacted\x00" + nonce, hashlib.sha256).digest()
    return base64.b64encode(nonce + mac).decode()


def redacted_data_valid(key: bytes, data: Any) -> bool:
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else b""
    except ValueError:
        return False
    if len(raw) != 24 + 32:
        return False
    expected = hmac.new(key, b"redacted\x00" + raw[:24], hashlib.sha256).digest()
    return hmac.compare_digest(expected, raw[24:])


# --------------------------------------------------------------------------- errors


def new_request_id() -> str:
    return "req_011C" + "".join(secrets.choice(ALNUM) for _ in range(20))


class FakeAPIError(Exception):
    """An error answered with Anthropic's JSON error body."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}, "request_id": request_id}

    def response(self) -> web.Response:
        request_id = new_request_id()
        return web.Response(status=self.status, body=orjson.dumps(self.body(request_id)),
                            content_type="application/json", headers={**self.headers, "request-id": request_id})


def invalid(message: str) -> FakeAPIError:
    return FakeAPIError(400, message)


def _rfc3339(seconds_ahead: float) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds_ahead)
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def ratelimit_headers(exhausted: bool = False) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind, limit in (("requests", 4000), ("tokens", 2_000_000), ("input-tokens", 1_600_000),
                        ("output-tokens", 400_000)):
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        remaining = 0 if exhausted and kind in ("requests", "input-tokens", "tokens") else limit - 1
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{kind}-reset"] = _rfc3339(1 if exhausted else 0)
    return headers


def status_error(status: int, model: str, retry_after: str | None = None) -> FakeAPIError:
    """The realistic Anthropic error for an HTTP status."""
    retry = {"retry-after": retry_after} if retry_after is not None else {}
    if status == 400:
        return FakeAPIError(400, "Invalid request (simulated by #fake:status=400).")
    if status == 401:
        return FakeAPIError(401, "invalid x-api-key", "authentication_error")
    if status == 402:
        return FakeAPIError(402, "Your credit balance is too low to access the Anthropic API.", "billing_error")
    if status == 403:
        return FakeAPIError(403, "Your API key does not have permission to use the specified resource.",
                            "permission_error")
    if status == 404:
        return FakeAPIError(404, f"model: {model}", "not_found_error")
    if status == 413:
        return FakeAPIError(413, "Request exceeds the maximum allowed number of bytes.", "request_too_large")
    if status == 429:
        return FakeAPIError(
            429,
            "This request would exceed the rate limit for your organization (fake-org) of 4,000 requests per "
            "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
            "headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try "
            "again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your "
            "options for a rate limit increase.",
            "rate_limit_error",
            headers={**ratelimit_headers(exhausted=True), "retry-after": retry_after or "1"},
        )
    if status == 500:
        return FakeAPIError(500, "Internal server error", "api_error", headers=retry)
    if status == 504:
        return FakeAPIError(504, "Request timed out", "timeout_error")
    if status == 529:
        return FakeAPIError(529, "Overloaded", "overloaded_error", headers=retry)
    type_ = "api_error" if status >= 500 else "invalid_request_error"
    return FakeAPIError(status, f"Simulated HTTP {status} error.", type_, headers=retry)


MID_STREAM_ERROR: dict[str, Any] = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


# --------------------------------------------------------------------------- directives


@dataclass
class Scenario(Directives):
    """The parsed ``#fake:`` directives of a request (see the module docstring)."""

    tokens: int | None = None
    tools: bool = False
    tool_noargs: bool = False
    thinking: int | None = None
    redacted_thinking: bool = False
    max_tokens: bool = False
    stop_sequence: bool = False
    refusal: bool = False
    pause_turn: bool = False
    cache_read: int = 0
    cache_write: int = 0
    web_search: int = 0
    web_fetch: int = 0
    bad_usage: str | None = None
    status: int | None = None
    retry_after: str | None = None
    error_mid: bool = False
    reset: bool = False
    truncate: bool = False
    slow_first: float = 0.0
    delay: float | None = None
    hang: bool = False
    ping: bool = False
    crlf: bool = False
    echo_model: str | None = None

    @classmethod
    def directive_error(cls, message: str, code: str) -> FakeAPIError:
        return invalid(message)


# --------------------------------------------------------------------------- request parsing


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content if isinstance(content, list) else []


def _tool_result_text(block: dict[str, Any]) -> str:
    return " ".join(b["text"] for b in _blocks(block.get("content"))
                    if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))


def block_text(block: Any) -> str:
    """The countable text of one content block."""
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return block["text"]
    if kind == "tool_use":
        return f"{block.get('name', '')} {json.dumps(block.get('input', {}))}"
    if kind == "tool_result":
        return _tool_result_text(block)
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return block["thinking"]
    return ""


def message_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    return " ".join(block_text(b) for b in _blocks(message.get("content")))


def system_text(system: Any) -> str:
    return " ".join(block_text(b) for b in _blocks(system))


def count_input_tokens(body: dict[str, Any]) -> int:
    total = len(system_text(body.get("system")).split())
    total += sum(3 + len(message_text(m).split()) for m in body.get("messages") or [])
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            total += len(f"{tool.get('name', '')} {tool.get('description', '')}".split())
    return total


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def _has_1h_cache(value: Any) -> bool:
    if isinstance(value, dict):
        control = value.get("cache_control")
        if isinstance(control, dict) and control.get("ttl") == "1h":
            return True
        return any(_has_1h_cache(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_1h_cache(v) for v in value)
    return False


def thinking_enabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


# --------------------------------------------------------------------------- validation


@dataclass
class Turn:
    role: str
    index: int  # index of the turn's first message in the request
    blocks: list[tuple[int, int, dict[str, Any]]]  # (message index, block index, block)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_common(body: Any, state: FakeAnthropicState, *, need_max_tokens: bool) -> dict[str, Any]:
    """Checks shared by /v1/messages and /v1/messages/count_tokens."""
    if not isinstance(body, dict):
        raise invalid("Input should be a valid dictionary")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model: Field required")
    if need_max_tokens:
        if "max_tokens" not in body:
            raise invalid("max_tokens: Field required")
        if not _is_int(body["max_tokens"]):
            raise invalid("max_tokens: Input should be a valid integer")
        if body["max_tokens"] < 0:
            raise invalid("max_tokens: Input should be greater than or equal to 0")
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages: Field required")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    turns = validate_messages(messages, state)
    validate_tool_pairing(turns)
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or not 0 <= temperature <= 1):
        raise invalid("temperature: range: 0..1")
    validate_thinking(body, turns, need_max_tokens)
    validate_server_tools(body.get("tools"))
    return body


def validate_server_tools(tools: Any) -> None:
    """``max_uses`` of a server tool: a positive integer when present."""
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict) or "max_uses" not in tool:
            continue
        max_uses = tool["max_uses"]
        if not _is_int(max_uses):
            raise invalid(f"tools.{i}.max_uses: Input should be a valid integer")
        if max_uses < 1:
            raise invalid(f"tools.{i}.max_uses: Input should be greater than or equal to 1")


def validate_messages(messages: list[Any], state: FakeAnthropicState) -> list[Turn]:
    roles = ("user", "assistant", "system") if state.allow_system_role else ("user", "assistant")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in roles:
            expected = " or ".join(f"'{r}'" for r in roles)
            raise invalid(f"messages.{i}.role: Input should be {expected}")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise invalid(f"messages.{i}.content: Input should be a valid list")
        if role != "assistant" and (content == "" or content == []):
            raise invalid(f"messages.{i}: all messages must have non-empty content except for the optional "
                          "final assistant message")
        blocks = _blocks(content)
        for j, block in enumerate(blocks):
            validate_block(i, j, role, block, state)
        if role == "system":
            continue  # SDK 2.x mid-conversation system message: no turn of its own
        if turns and turns[-1].role == role:  # consecutive same-role turns are combined
            turns[-1].blocks += [(i, j, b) for j, b in enumerate(blocks)]
        else:
            turns.append(Turn(role, i, [(i, j, b) for j, b in enumerate(blocks)]))
    if not turns or turns[0].role != "user":
        raise invalid('messages: first message must use the "user" role')
    return turns


def validate_block(i: int, j: int, role: str, block: Any, state: FakeAnthropicState) -> None:
    where = f"messages.{i}.content.{j}"
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid(f"{where}: Input should be a valid dictionary or object to extract fields from")
    kind = block["type"]
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid(f"{where}.text.text: Field required")
        if not text:
            raise invalid("messages: text content blocks must be non-empty")
        if not text.strip():
            raise invalid("messages: text content blocks must contain non-whitespace text")
    elif kind == "tool_use":
        if role != "assistant":
            raise invalid(f"{where}: `tool_use` blocks can only be in `assistant` messages")
        tool_id = block.get("id")
        if not isinstance(tool_id, str):
            raise invalid(f"{where}.tool_use.id: Field required")
        if not TOOL_USE_ID_RE.match(tool_id):
            raise invalid(f"{where}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not block["name"]:
            raise invalid(f"{where}.tool_use.name: Field required")
        if not isinstance(block.get("input"), dict):
            raise invalid(f"{where}.tool_use.input: Input should be a valid dictionary")
    elif kind == "tool_result":
        if role != "user":
            raise invalid(f"{where}: `tool_result` blocks can only be in `user` messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid(f"{where}.tool_result.tool_use_id: Field required")
        for k, inner in enumerate(_blocks(block.get("content")) if isinstance(block.get("content"), list) else []):
            if isinstance(inner, dict) and inner.get("type") == "text":
                if not inner.get("text"):
                    raise invalid("messages: text content blocks must be non-empty")
                if not str(inner["text"]).strip():
                    raise invalid("messages: text content blocks must contain non-whitespace text")
            elif not isinstance(inner, dict):
                raise invalid(f"{where}.tool_result.content.{k}: Input should be a valid dictionary")
    elif kind == "thinking":
        if role != "assistant":
            raise invalid(f"{where}: `thinking` blocks can only be in `assistant` messages")
        thinking, signature = block.get("thinking"), block.get("signature")
        if not isinstance(thinking, str):
            raise invalid(f"{where}.thinking.thinking: Field required")
        if not isinstance(signature, str):
            raise invalid(f"{where}.thinking.signature: Field required")
        if not hmac.compare_digest(sign_thinking(state.signing_key, thinking), signature):
            raise invalid(f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "redacted_thinking":
        if role != "assistant":
            raise invalid(f"{where}: `redacted_thinking` blocks can only be in `assistant` messages")
        if not redacted_data_valid(state.signing_key, block.get("data")):
            raise invalid(f"{where}: Invalid `data` in `redacted_thinking` block")


def validate_tool_pairing(turns: list[Turn]) -> None:
    for t, turn in enumerate(turns):
        if turn.role != "assistant":
            continue
        tool_ids = [b["id"] for _, _, b in turn.blocks if b.get("type") == "tool_use"]
        if not tool_ids:
            continue
        answered: set[str] = set()
        following = turns[t + 1] if t + 1 < len(turns) else None
        if following is not None and following.role == "user":
            for _, _, block in following.blocks:
                if block.get("type") != "tool_result":
                    break  # tool_result blocks must come first
                answered.add(block["tool_use_id"])
        missing = [tool_id for tool_id in tool_ids if tool_id not in answered]
        if missing:
            last_index = max(i for i, _, _ in turn.blocks)
            raise invalid(f"messages.{last_index}: `tool_use` ids were found without `tool_result` blocks "
                          f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                          "corresponding `tool_result` block in the next message.")
    for t, turn in enumerate(turns):
        if turn.role != "user":
            continue
        previous = turns[t - 1] if t > 0 else None
        known = {b["id"] for _, _, b in previous.blocks if b.get("type") == "tool_use"} if previous else set()
        for i, j, block in turn.blocks:
            if block.get("type") == "tool_result" and block["tool_use_id"] not in known:
                raise invalid(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                              f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                              "`tool_use` block in the previous message.")


def validate_thinking(body: dict[str, Any], turns: list[Turn], need_max_tokens: bool) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive", "between_tools"):
        raise invalid("thinking: Input tag found using 'type' does not match any of the expected tags: "
                      "'enabled', 'disabled', 'adaptive', 'between_tools'")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not _is_int(budget):
            raise invalid("thinking.enabled.budget_tokens: Field required")
        if budget < MIN_THINKING_BUDGET:
            raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if need_max_tokens and body["max_tokens"] <= budget:
            raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                          f"documentation at {EXTENDED_THINKING_DOCS}#max-tokens-and-context-window-size")
    if not thinking_enabled(body):
        return
    tool_choice = body.get("tool_choice")
    if isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise invalid("`temperature` may only be set to 1 when thinking is enabled. Please consult our "
                      f"documentation at {EXTENDED_THINKING_DOCS}#feature-compatibility")
    assistant_turns = [turn for turn in turns if turn.role == "assistant"]
    if not assistant_turns:
        return
    last = assistant_turns[-1]
    if any(b.get("type") == "tool_use" for _, _, b in last.blocks):
        i, j, first = last.blocks[0]
        if first.get("type") not in ("thinking", "redacted_thinking"):
            raise invalid(
                f"messages.{i}.content.{j}.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{first.get('type')}`. When `thinking` is enabled, a final `assistant` message must start with "
                "a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                "recommend you include thinking blocks from previous turns. To avoid this requirement, disable "
                f"`thinking`. Please consult our documentation at {EXTENDED_THINKING_DOCS}")


# --------------------------------------------------------------------------- reply plan


@dataclass
class BlockPlan:
    """One output content block and how it streams."""

    kind: str  # "thinking" | "redacted_thinking" | "text" | "tool_use" | "server_tool_use" | "result"
    pieces: list[str] = field(default_factory=list)  # text/thinking deltas or partial_json fragments
    result: dict[str, Any] = field(default_factory=dict)  # a server tool's whole result block (kind "result")
    signature: str = ""
    data: str = ""
    tool_id: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    hidden_tokens: int = 0  # thinking pieces not shown (display: omitted)

    @property
    def tokens(self) -> int:
        if self.kind in ("tool_use", "server_tool_use"):
            return 1 + sum(1 for p in self.pieces if p)
        if self.kind == "redacted_thinking":
            return 1
        if self.kind == "result":
            return 0
        return len(self.pieces) + self.hidden_tokens

    def start(self) -> dict[str, Any]:
        if self.kind == "text":
            return {"type": "text", "text": ""}
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        if self.kind == "redacted_thinking":
            return {"type": "redacted_thinking", "data": self.data}
        if self.kind == "result":
            return self.result
        return {"type": self.kind, "id": self.tool_id, "name": self.name, "input": {}}

    def deltas(self) -> list[dict[str, Any]]:
        if self.kind == "text":
            return [{"type": "text_delta", "text": p} for p in self.pieces]
        if self.kind == "thinking":
            return [{"type": "thinking_delta", "thinking": p} for p in self.pieces] + [
                {"type": "signature_delta", "signature": self.signature}]
        if self.kind in ("tool_use", "server_tool_use"):
            return [{"type": "input_json_delta", "partial_json": p} for p in self.pieces]
        return []

    def final(self) -> dict[str, Any]:
        if self.kind == "text":
            return {"type": "text", "text": "".join(self.pieces)}
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": "".join(self.pieces), "signature": self.signature}
        if self.kind == "redacted_thinking":
            return {"type": "redacted_thinking", "data": self.data}
        if self.kind == "result":
            return self.result
        return {"type": self.kind, "id": self.tool_id, "name": self.name, "input": self.input}


@dataclass
class MessagePlan:
    id: str
    model: str
    blocks: list[BlockPlan]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    cache_read: int
    cache_write: int
    cache_write_1h: bool
    server_tool_use: dict[str, int] | None = None  # {"web_search_requests", "web_fetch_requests"} when server tools were offered
    bad_usage: str | None = None  # #fake:bad_usage=KIND

    @property
    def output_tokens(self) -> int:
        return sum(b.tokens for b in self.blocks)

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if self.cache_write_1h else self.cache_write,
                "ephemeral_1h_input_tokens": self.cache_write if self.cache_write_1h else 0,
            },
            "output_tokens": malformed_count(self.bad_usage, self.output_tokens),
            "service_tier": "standard",
        }
        if self.server_tool_use is not None:
            usage["server_tool_use"] = dict(self.server_tool_use)
        return usage

    def start_usage(self) -> dict[str, Any]:
        """message_start's usage: output_tokens 1, no server tool run yet."""
        usage = {**self.usage(), "output_tokens": 1}
        if self.server_tool_use is not None:
            usage["server_tool_use"] = {name: 0 for name in self.server_tool_use}
        return usage

    def delta_usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": malformed_count(self.bad_usage, self.output_tokens),
        }
        if self.server_tool_use is not None:
            usage["server_tool_use"] = dict(self.server_tool_use)
        return usage

    def stop_details(self) -> dict[str, Any] | None:
        if self.stop_reason == "refusal":
            return {"type": "refusal", "category": None, "explanation": None}
        return None


def split_json(text: str) -> list[str]:
    """``""`` then fragments of varying size (split mid-token), as Anthropic streams tool input."""
    fragments = [""]
    position, k = 0, 0
    while position < len(text):
        size = FRAGMENT_SIZES[k % len(FRAGMENT_SIZES)]
        fragments.append(text[position:position + size])
        position, k = position + size, k + 1
    return fragments


def first_tool_name(body: dict[str, Any], default: str) -> str:
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict) and isinstance(tools[0].get("name"), str):
        return tools[0]["name"]
    return default


SERVER_TOOL_KINDS = ("web_search", "web_fetch")


def server_tool(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The request's ``web_search_*`` / ``web_fetch_*`` tool definition, if any."""
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and str(tool.get("type", "")).startswith(kind + "_"):
            return tool
    return None


def server_result(kind: str, tool_id: str, k: int, exceeded: bool) -> dict[str, Any]:
    """The result block of the k-th use of a server tool (an error past ``max_uses``)."""
    if kind == "web_search":
        content: Any = (
            {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"} if exceeded else
            [{"type": "web_search_result", "url": f"https://example.com/result-{k + 1}", "title": f"Fake result {k + 1}",
              "encrypted_content": base64.b64encode(f"fake-result-{k + 1}".encode()).decode(), "page_age": "December 1, 2026"}]
        )
    else:
        content = (
            {"type": "web_fetch_tool_result_error", "error_code": "max_uses_exceeded"} if exceeded else
            {"type": "web_fetch_result", "url": f"https://example.com/page-{k + 1}", "retrieved_at": "2026-12-01T00:00:00Z",
             "content": {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Fake page text."},
                         "title": f"Fake page {k + 1}"}}
        )
    return {"type": f"{kind}_tool_result", "tool_use_id": tool_id, "content": content}


def plan_server_tools(body: dict[str, Any], scenario: Scenario, blocks: list[BlockPlan]) -> dict[str, int] | None:
    """Append the ``#fake:web_search=N`` / ``web_fetch=N`` blocks; the ``server_tool_use`` usage (None: no server tool)."""
    usage: dict[str, int] | None = None
    for kind in SERVER_TOOL_KINDS:
        tool = server_tool(body, kind)
        if tool is None:
            continue
        usage = usage or {f"{k}_requests": 0 for k in SERVER_TOOL_KINDS}
        attempts = getattr(scenario, kind)
        cap = tool.get("max_uses")
        performed = attempts if cap is None else min(attempts, cap)
        usage[f"{kind}_requests"] = performed
        for k in range(attempts):
            tool_input = {"query": f"fake search {k + 1}"} if kind == "web_search" else {"url": f"https://example.com/page-{k + 1}"}
            tool_id = random_id("srvtoolu_01", 22)
            blocks.append(BlockPlan("server_tool_use", split_json(json.dumps(tool_input)), tool_id=tool_id, name=kind,
                                    input=tool_input))
            blocks.append(BlockPlan("result", result=server_result(kind, tool_id, k, exceeded=k >= performed)))
    return usage


def plan_message(body: dict[str, Any], scenario: Scenario, state: FakeAnthropicState) -> MessagePlan:
    blocks: list[BlockPlan] = []
    if thinking_enabled(body):
        if scenario.redacted_thinking:
            blocks.append(BlockPlan("redacted_thinking", data=redacted_data(state.signing_key)))
        count = DEFAULT_THINKING_PIECES if scenario.thinking is None else scenario.thinking
        if count:
            pieces = word_pieces(REASONING_WORDS, count)
            hidden = (body.get("thinking") or {}).get("display") == "omitted"
            shown = [] if hidden else pieces
            signature = sign_thinking(state.signing_key, "".join(shown))
            state.issued_signatures.add(signature)
            blocks.append(BlockPlan("thinking", shown, signature=signature, hidden_tokens=len(pieces) if hidden else 0))
    server_tool_use = plan_server_tools(body, scenario, blocks)
    tool_calls = scenario.tools or scenario.tool_noargs
    if not tool_calls or scenario.tokens is not None:
        count = len(REPLY_WORDS) if scenario.tokens is None else scenario.tokens
        if count:
            blocks.append(BlockPlan("text", word_pieces(REPLY_WORDS, count)))
    if scenario.tools:
        name = first_tool_name(body, DEFAULT_TOOL_NAME)
        for tool_input in TOOL_INPUTS:
            blocks.append(BlockPlan("tool_use", split_json(json.dumps(tool_input)), tool_id=random_id("toolu_01", 22),
                                    name=name, input=dict(tool_input)))
    elif scenario.tool_noargs:
        blocks.append(BlockPlan("tool_use", [], tool_id=random_id("toolu_01", 22),
                                name=first_tool_name(body, DEFAULT_NOARG_TOOL_NAME), input={}))

    stop_reason = "tool_use" if tool_calls else "end_turn"
    stop_sequence: str | None = None
    budget = body["max_tokens"]
    if not tool_calls and sum(b.tokens for b in blocks) > budget:
        remaining, kept = budget, []
        for block in blocks:
            if remaining <= 0:
                break
            if block.kind in ("thinking", "text") and block.tokens > remaining:
                block.pieces = block.pieces[:remaining]
                if block.kind == "thinking":
                    block.signature = sign_thinking(state.signing_key, "".join(block.pieces))
                    state.issued_signatures.add(block.signature)
            remaining -= block.tokens
            kept.append(block)
        blocks, stop_reason = kept, "max_tokens"
    if scenario.max_tokens:
        stop_reason = "max_tokens"
    elif scenario.stop_sequence:
        stop_reason = "stop_sequence"
        stops = body.get("stop_sequences")
        stop_sequence = stops[0] if isinstance(stops, list) and stops and isinstance(stops[0], str) else None
    elif scenario.refusal:
        stop_reason = "refusal"
    elif scenario.pause_turn:
        stop_reason = "pause_turn"

    total = count_input_tokens(body)
    cache_read = min(scenario.cache_read, total)
    cache_write = min(scenario.cache_write, total - cache_read)
    return MessagePlan(
        id=random_id("msg_01", 22),
        model=scenario.echo_model or body["model"],
        blocks=blocks,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        input_tokens=total - cache_read - cache_write,
        cache_read=cache_read,
        cache_write=cache_write,
        cache_write_1h=_has_1h_cache(body),
        server_tool_use=server_tool_use,
        bad_usage=scenario.bad_usage,
    )


def render_message(plan: MessagePlan) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": plan.id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [b.final() for b in plan.blocks],
        "stop_reason": plan.stop_reason,
        "stop_sequence": plan.stop_sequence,
        "usage": plan.usage(),
    }
    if (details := plan.stop_details()) is not None:
        message["stop_details"] = details
    return message


# --------------------------------------------------------------------------- streaming


def stream_events(plan: MessagePlan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(head, tail): message_start + block events, then the closing events.

    ``head`` is where failure directives strike; block stop events of the last
    block are in ``head`` too, so ``tail`` is message_delta + message_stop.
    """
    start_message = {
        "id": plan.id, "type": "message", "role": "assistant", "model": plan.model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": plan.start_usage(),
    }
    head: list[dict[str, Any]] = [{"type": "message_start", "message": start_message}]
    for index, block in enumerate(plan.blocks):
        head.append({"type": "content_block_start", "index": index, "content_block": block.start()})
        if index == 0:
            head.append({"type": "ping"})
        head += [{"type": "content_block_delta", "index": index, "delta": d} for d in block.deltas()]
        head.append({"type": "content_block_stop", "index": index})
    delta: dict[str, Any] = {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence}
    if (details := plan.stop_details()) is not None:
        delta["stop_details"] = details
    tail = [{"type": "message_delta", "delta": delta, "usage": plan.delta_usage()}, {"type": "message_stop"}]
    return head, tail


PING_DATA = b'{"type": "ping"}'  # the real API's exact bytes, note the space


class SSEWriter(EventWriter):
    """Frames ``event:``/``data:`` SSE events onto a prepared StreamResponse."""

    def __init__(self, request: web.Request, response: web.StreamResponse, *,
                 crlf: bool, ping: bool, delay: float) -> None:
        super().__init__(request, response, delay)
        self.newline = b"\r\n" if crlf else b"\n"
        self.ping = ping

    def frame(self, name: str, payload: bytes) -> bytes:
        nl = self.newline
        return b"event: " + name.encode() + nl + b"data: " + payload + nl + nl

    async def event(self, event: dict[str, Any]) -> None:
        await self.pace()
        name = event["type"]
        payload = PING_DATA if name == "ping" else orjson.dumps(event)
        data = self.frame(name, payload)
        if self.ping and self.sent and name != "ping":
            data = self.frame("ping", PING_DATA) + data
        await self.write(data)
        self.sent += 1


# --------------------------------------------------------------------------- handlers


def success_headers() -> dict[str, str]:
    return ratelimit_headers()


async def stream_response(request: web.Request, plan: MessagePlan, scenario: Scenario,
                          state: FakeAnthropicState) -> web.StreamResponse:
    head, tail = stream_events(plan)
    response = await start_event_stream(request, success_headers())
    delay = scenario.delay if scenario.delay is not None else state.token_delay
    writer = SSEWriter(request, response, crlf=scenario.crlf, ping=scenario.ping, delay=delay)
    failing = scenario.error_mid or scenario.reset or scenario.truncate
    cut = max(3, len(head) // 2) if failing else len(head)
    for event in head[:cut]:
        await writer.event(event)
    if scenario.error_mid:
        await writer.event(MID_STREAM_ERROR)
    elif scenario.reset:
        abort_connection(request)
        return response
    if failing:
        await response.write_eof()
        return response
    for event in head[cut:] + tail:
        await writer.event(event)
    await response.write_eof()
    return response


async def json_response(request: web.Request, plan: MessagePlan, scenario: Scenario) -> web.StreamResponse:
    payload = orjson.dumps(render_message(plan))
    if scenario.reset:
        abort_connection(request)
        raise ClientGone  # nothing more to send; not counted as a client cancellation
    if scenario.error_mid:
        payload = orjson.dumps({**MID_STREAM_ERROR, "request_id": new_request_id()})
    if not scenario.truncate:
        return web.Response(body=payload, content_type="application/json", headers=success_headers())
    response = web.StreamResponse(headers={"Content-Type": "application/json", **success_headers()})
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    await response.write_eof()
    return response


async def read_body(request: web.Request, state: FakeAnthropicState) -> Any:
    recorded, _ = await read_json(request, state)
    return recorded.json


def check_json(parsed: Any, state: FakeAnthropicState) -> None:
    if parsed is None and state.requests[-1].raw.strip() != b"null":
        raise invalid("There was an error parsing the body of your request. Please ensure that the body is valid "
                      "JSON.")


def check_auth(request: web.Request, state: FakeAnthropicState) -> None:
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = token.strip()
    if state.api_keys is None:
        return
    if not key:
        raise FakeAPIError(401, "x-api-key header is required", "authentication_error")
    if key not in state.api_keys:
        raise FakeAPIError(401, "invalid x-api-key", "authentication_error")


def check_version(request: web.Request) -> None:
    version = request.headers.get("anthropic-version")
    if not version:
        raise invalid("anthropic-version: header is required")
    if not VERSION_RE.match(version.strip()):
        raise invalid(f"anthropic-version: invalid version: {version!r}")


async def checked_body(request: web.Request, state: FakeAnthropicState, *, need_max_tokens: bool) -> dict[str, Any]:
    """Read and record the request, then run the auth, version, JSON and body checks in the API's order."""
    parsed = await read_body(request, state)
    check_auth(request, state)
    check_version(request)
    check_json(parsed, state)
    return validate_common(parsed, state, need_max_tokens=need_max_tokens)


async def messages(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        body = await checked_body(request, state, need_max_tokens=True)
        scenario = Scenario.parse(last_user_text(body["messages"]))
    except FakeAPIError as exc:
        return exc.response()
    is_stream = bool(body.get("stream"))

    async def respond() -> web.StreamResponse:
        if scenario.status is not None:
            return status_error(scenario.status, body["model"], scenario.retry_after).response()
        plan = plan_message(body, scenario, state)
        if is_stream:
            return await stream_response(request, plan, scenario, state)
        return await json_response(request, plan, scenario)

    return await serve_scenario(request, state, scenario, is_stream, respond)


async def count_tokens(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await checked_body(request, state, need_max_tokens=False)
    except FakeAPIError as exc:
        return exc.response()
    return web.Response(body=orjson.dumps({"input_tokens": count_input_tokens(body)}),
                        content_type="application/json")


def model_info(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model.replace("-", " ").title(),
            "created_at": "2025-09-29T00:00:00Z"}


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    record_request(request, state)
    try:
        check_auth(request, state)
        check_version(request)
    except FakeAPIError as exc:
        return exc.response()
    model_id = request.match_info.get("model_id")
    if model_id is not None:
        if model_id not in state.models:
            return FakeAPIError(404, f"model: {model_id}", "not_found_error").response()
        return web.Response(body=orjson.dumps(model_info(model_id)), content_type="application/json")
    data = [model_info(m) for m in state.models]
    body = {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


# --------------------------------------------------------------------------- app


@web.middleware
async def anthropic_not_found(request: web.Request,
                              handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return FakeAPIError(404, "Not Found", "not_found_error").response()
    except web.HTTPMethodNotAllowed:
        return FakeAPIError(405, f"Method Not Allowed ({request.method} {request.path})").response()


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("request-id", new_request_id())


def create_app(api_keys: Iterable[str] | None = None, token_delay: float = 0.0,
               models: Iterable[str] | None = None, *, allow_system_role: bool = False) -> web.Application:
    """Build the fake server.  ``app["state"]`` (== ``app[STATE_KEY]``) is its FakeAnthropicState."""
    state = FakeAnthropicState(
        api_keys=set(api_keys) if api_keys is not None else None,
        token_delay=token_delay,
        models=tuple(models) if models is not None else DEFAULT_MODELS,
        allow_system_role=allow_system_role,
    )
    app = web.Application(middlewares=[anthropic_not_found])
    install_state(app, STATE_KEY, state)
    app.on_response_prepare.append(add_common_headers)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id}", list_models)
    return app


def iter_directive_names() -> Iterator[str]:
    """Names accepted after ``#fake:`` (for CLI help)."""
    return directive_names(Scenario)

