"""The fake OpenAI's routes, handlers and app factory."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable

import orjson
from aiohttp import web

from tokenhub.simulator.common.disconnects import serve_scenario
from tokenhub.simulator.common.recording import install_state, record_request
from tokenhub.simulator.common.timing import elapsed_ms, stamp_start
from tokenhub.simulator.openai.completion import json_response
from tokenhub.simulator.openai.embeddings import embeddings
from tokenhub.simulator.openai.errors import FakeAPIError, status_error
from tokenhub.simulator.openai.legacy import completions
from tokenhub.simulator.openai.plan import plan_completion
from tokenhub.simulator.openai.request import check_auth, last_user_text, read_body, validate_body
from tokenhub.simulator.openai.responses import responses
from tokenhub.simulator.openai.scenario import Scenario
from tokenhub.simulator.openai.state import DEFAULT_MODELS, STATE_KEY, FakeOpenAIState
from tokenhub.simulator.openai.streaming import stream_response


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


@web.middleware
async def openai_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        return FakeAPIError(exc.status, f"Invalid URL ({request.method} {request.path})").response()


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("x-request-id", "req_" + secrets.token_hex(16))
    response.headers.setdefault("openai-version", "2020-10-01")
    response.headers.setdefault("openai-processing-ms", str(elapsed_ms(request)))


def create_app(
    api_keys: Iterable[str] | None = None, token_delay: float = 0.0, models: Iterable[str] | None = None
) -> web.Application:
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
        app.router.add_post(f"{prefix}/embeddings", embeddings)
        app.router.add_post(f"{prefix}/completions", completions)
        app.router.add_post(f"{prefix}/responses", responses)
        app.router.add_get(f"{prefix}/models", list_models)
    return app
