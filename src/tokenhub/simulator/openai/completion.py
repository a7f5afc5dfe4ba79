"""A non-stream answer: the ``chat.completion`` object, and its failure directives."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.common.disconnects import ClientGone, abort_connection
from tokenhub.simulator.openai.errors import mid_stream_error, success_headers
from tokenhub.simulator.openai.plan import ChoicePlan, CompletionPlan
from tokenhub.simulator.openai.scenario import Scenario

SYSTEM_FINGERPRINT = "fp_f4k3d0e5a1"


def render_message(choice: ChoicePlan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.text, "refusal": None, "annotations": []}
    if choice.reasoning:
        message["reasoning_content"] = "".join(choice.reasoning)
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in choice.tool_calls
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
