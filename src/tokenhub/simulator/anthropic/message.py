"""A non-stream answer: the ``message`` object, and its failure directives."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.anthropic.blocks import MessagePlan
from tokenhub.simulator.anthropic.errors import MID_STREAM_ERROR, new_request_id, success_headers
from tokenhub.simulator.anthropic.scenario import Scenario
from tokenhub.simulator.common.disconnects import ClientGone, abort_connection


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
