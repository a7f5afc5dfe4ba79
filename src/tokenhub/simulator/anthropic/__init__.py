"""A protocol-exact fake Anthropic Messages API upstream (aiohttp).

The Anthropic counterpart of :mod:`tokenhub.simulator.openai`: used as the
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
                       final message): ``negative`` (-7), ``float`` (12.5),
                       ``string`` ("12") or ``huge`` (3e12)
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

The package :mod:`tokenhub.simulator.anthropic`, module by module:

* ``state``: The fake Anthropic's state: its keys, models, pacing and the requests it recorded.
* ``signatures``: Thinking-block signatures and redacted-thinking data: made and checked by the
  fake.
* ``errors``: Anthropic's error bodies (one per HTTP status), request ids and ``anthropic-
  ratelimit-*`` headers.
* ``scenario``: The ``#fake:`` directives the fake Anthropic understands.
* ``prompt``: What the fake reads from a Messages request: its text, its input tokens, its thinking
  setting.
* ``validation``: The limits the real Messages API enforces on a request body (each a 400
  ``invalid_request_error``).
* ``blocks``: The plan of a message: its content blocks (with their stream deltas) and its usage.
* ``plan``: What a message will say: its content blocks and usage, decided before anything is
  written.
* ``server_tools``: The server tools (web search, web fetch) the fake pretends to run, and their
  result blocks.
* ``message``: A non-stream answer: the ``message`` object, and its failure directives.
* ``streaming``: A stream answer: ``event:``/``data:`` SSE events, pings, and its failure
  directives.
* ``checks``: The checks every request passes first: JSON body, API key, ``anthropic-version``.
* ``app``: The fake Anthropic's routes, handlers and app factory.
"""

from __future__ import annotations

from tokenhub.simulator.anthropic.app import create_app
from tokenhub.simulator.anthropic.errors import status_error
from tokenhub.simulator.anthropic.scenario import Scenario, iter_directive_names
from tokenhub.simulator.anthropic.signatures import sign_thinking
from tokenhub.simulator.anthropic.state import DEFAULT_MODELS, STATE_KEY, FakeAnthropicState

__all__ = [
    "DEFAULT_MODELS",
    "FakeAnthropicState",
    "STATE_KEY",
    "Scenario",
    "create_app",
    "iter_directive_names",
    "sign_thinking",
    "status_error",
]
