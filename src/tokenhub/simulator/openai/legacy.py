"""The fake's ``POST /v1/completions``: OpenAI's legacy text completions (``text_completion`` objects).

The answer is planned like a chat answer for a user message holding the prompt (``#fake:`` directives
work the same), as text: ``choices[].text``, ``finish_reason`` stop | length, ``usage``. Streaming sends
``text_completion`` chunks, a usage chunk when ``stream_options.include_usage`` asks, then ``[DONE]``.
The default ``max_tokens`` is 16, as OpenAI's.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.common.text import random_id
from tokenhub.simulator.openai.errors import FakeAPIError, status_error
from tokenhub.simulator.openai.plan import plan_completion
from tokenhub.simulator.openai.request import check_auth, read_body
from tokenhub.simulator.openai.scenario import Scenario
from tokenhub.simulator.openai.state import STATE_KEY

PARAMETERS = frozenset({"model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options",
                        "logprobs", "echo", "stop", "presence_penalty", "frequency_penalty", "best_of", "logit_bias", "user",
                        "seed"})  # fmt: skip


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt[0]
    if isinstance(prompt, list) and prompt:
        return " ".join(str(t) for t in (prompt[0] if isinstance(prompt[0], list) else prompt))
    raise FakeAPIError(400, "Invalid value for 'prompt': expected a string, an array of strings or of tokens.", param="prompt")


def _chunk(plan_id: str, created: int, model: str, text: str, finish: str | None, usage: Any = None) -> bytes:
    body: dict[str, Any] = {"id": plan_id, "object": "text_completion", "created": created, "model": model,
                            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}] if usage is None else []}  # fmt: skip
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        body = await read_body(request, state)
        check_auth(request, state)
        if not isinstance(body, dict):
            raise FakeAPIError(400, "Invalid type for request body: expected an object.")
        unknown = sorted(k for k in body if k not in PARAMETERS)
        if unknown:
            raise FakeAPIError(400, f"Unrecognized request argument supplied: {', '.join(unknown)}")
        if not isinstance(body.get("model"), str) or "prompt" not in body:
            raise FakeAPIError(400, "you must provide a model parameter" if "prompt" in body else "Missing required parameter: 'prompt'.")
        text = _prompt_text(body["prompt"])
    except FakeAPIError as exc:
        return exc.response()
    scenario = Scenario.parse(text)
    if scenario.status is not None:
        return status_error(scenario.status, body["model"], scenario.retry_after).response()
    chat = {"model": body["model"], "messages": [{"role": "user", "content": text}], "max_tokens": body.get("max_tokens") or 16}
    plan = plan_completion(chat, scenario)
    choice = plan.choices[0]
    plan_id = random_id("cmpl-", 29)
    if not body.get("stream"):
        answer = {"id": plan_id, "object": "text_completion", "created": plan.created, "model": plan.model,
                  "choices": [{"text": "".join(choice.content), "index": 0, "logprobs": None, "finish_reason": choice.finish_reason}],
                  "usage": plan.usage}  # fmt: skip
        return web.Response(body=orjson.dumps(answer), content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for piece in choice.content:
        await response.write(_chunk(plan_id, plan.created, plan.model, piece, None))
    await response.write(_chunk(plan_id, plan.created, plan.model, "", choice.finish_reason))
    if (body.get("stream_options") or {}).get("include_usage"):
        await response.write(_chunk(plan_id, plan.created, plan.model, "", None, plan.usage))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
