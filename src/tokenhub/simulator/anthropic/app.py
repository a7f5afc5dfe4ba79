"""The fake Anthropic's routes, handlers and app factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.anthropic.checks import check_auth, check_version, checked_body
from tokenhub.simulator.anthropic.errors import FakeAPIError, new_request_id, status_error
from tokenhub.simulator.anthropic.message import json_response
from tokenhub.simulator.anthropic.plan import plan_message
from tokenhub.simulator.anthropic.prompt import count_input_tokens, last_user_text
from tokenhub.simulator.anthropic.scenario import Scenario
from tokenhub.simulator.anthropic.state import DEFAULT_MODELS, STATE_KEY, FakeAnthropicState
from tokenhub.simulator.anthropic.streaming import stream_response
from tokenhub.simulator.common.disconnects import serve_scenario
from tokenhub.simulator.common.recording import install_state, record_request


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
    return web.Response(body=orjson.dumps({"input_tokens": count_input_tokens(body)}), content_type="application/json")


def model_info(model: str) -> dict[str, Any]:
    return {"type": "model", "id": model, "display_name": model.replace("-", " ").title(), "created_at": "2025-09-29T00:00:00Z"}


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
    body = {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


@web.middleware
async def anthropic_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return FakeAPIError(404, "Not Found", "not_found_error").response()
    except web.HTTPMethodNotAllowed:
        return FakeAPIError(405, f"Method Not Allowed ({request.method} {request.path})").response()


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("request-id", new_request_id())


def create_app(
    api_keys: Iterable[str] | None = None,
    token_delay: float = 0.0,
    models: Iterable[str] | None = None,
    *,
    allow_system_role: bool = False,
) -> web.Application:
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
