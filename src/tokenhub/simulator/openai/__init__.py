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
                       ``float`` (12.5), ``string`` ("12") or ``huge`` (3e12)
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
in :mod:`tokenhub.simulator.common`.

The package :mod:`tokenhub.simulator.openai`, module by module:

* ``state``: The fake OpenAI's state: its keys, models, pacing and the requests it recorded.
* ``errors``: OpenAI's error bodies (one per HTTP status) and its ``x-ratelimit-*`` headers.
* ``scenario``: The ``#fake:`` directives the fake OpenAI understands.
* ``request``: Reading a chat request: its body, its key, the limits OpenAI enforces, its text.
* ``plan``: What a completion will say: choices, tool calls and usage, decided before anything is
  written.
* ``completion``: A non-stream answer: the ``chat.completion`` object, and its failure directives.
* ``streaming``: A stream answer: ``chat.completion.chunk`` events framed as SSE, and its failure
  directives.
* ``app``: The fake OpenAI's routes, handlers and app factory.
"""

from __future__ import annotations

from tokenhub.simulator.openai.app import create_app
from tokenhub.simulator.openai.errors import status_error
from tokenhub.simulator.openai.scenario import Scenario, iter_directive_names
from tokenhub.simulator.openai.state import DEFAULT_MODELS, STATE_KEY, FakeOpenAIState

__all__ = [
    "DEFAULT_MODELS",
    "FakeOpenAIState",
    "STATE_KEY",
    "Scenario",
    "create_app",
    "iter_directive_names",
    "status_error",
]
