"""The fake Gemini's routes (``models/{model}:{method}``, model listing), handlers and app factory."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from tokenhub.simulator.common.disconnects import serve_scenario
from tokenhub.simulator.common.recording import Headers, install_state
from tokenhub.simulator.common.timing import elapsed_ms, stamp_start
from tokenhub.simulator.gemini.contents import count_prompt_tokens, directive_text, get
from tokenhub.simulator.gemini.embeddings import embed
from tokenhub.simulator.gemini.errors import (
    NOT_FOUND_HTML,
    GeminiError,
    api_key_invalid,
    invalid,
    model_not_found,
    pretty_json,
    status_error,
)
from tokenhub.simulator.gemini.response import plan_response
from tokenhub.simulator.gemini.scenario import Scenario
from tokenhub.simulator.gemini.state import DEFAULT_MODELS, STATE_KEY, FakeGeminiState, RecordedRequest
from tokenhub.simulator.gemini.streaming import common_headers, json_response, stream_response
from tokenhub.simulator.gemini.validation import (
    check_request_shape,
    validate_contents,
    validate_generation_config,
    validate_thought_signatures,
    validate_tools,
)

EMBEDDING_PREFIXES = ("gemini-embedding", "text-embedding")


def record(request: web.Request, state: FakeGeminiState, raw: bytes) -> Any:
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except ValueError:
        parsed = None
    state.requests.append(
        RecordedRequest(request.method, request.path, dict(request.query), Headers(request.headers.items()), parsed, raw)
    )
    return parsed


def check_auth(request: web.Request, state: FakeGeminiState) -> None:
    if state.api_keys is None:
        return
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        raise GeminiError(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if key not in state.api_keys:
        raise api_key_invalid()


def parse_body(raw: bytes, parsed: Any) -> Any:
    if parsed is None and raw.strip() != b"null":
        snippet = raw.decode(errors="replace")[:40]
        message = f"Invalid JSON payload received. Unexpected token.\n{snippet}\n^"
        raise invalid(
            message, [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"description": message}]}]
        )
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
    if method not in ("generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"):
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
        if method in ("embedContent", "batchEmbedContents"):
            if not model.startswith(EMBEDDING_PREFIXES):
                raise model_not_found(model, version, method)
            return embed(method, model, body)
        if model.startswith(EMBEDDING_PREFIXES):
            raise model_not_found(model, version, method)
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
        "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
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
            raise GeminiError(
                404,
                f"models/{model} is not found for API version {request.match_info['version']}, or is not supported for getModel.",
            )
    except GeminiError as exc:
        return exc.response()
    return web.Response(body=pretty_json(model_resource(model)), headers=common_headers("application/json; charset=UTF-8"))


def html_not_found(request: web.Request) -> web.Response:
    return web.Response(status=404, text=NOT_FOUND_HTML.format(path=request.path), content_type="text/html", charset="UTF-8")


@web.middleware
async def google_not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return html_not_found(request)


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "scaffolding on HTTPServer2"
    response.headers.setdefault("Server-Timing", f"gfet4t7; dur={elapsed_ms(request)}")


def create_app(
    api_keys: Iterable[str] | None = None, token_delay: float = 0.0, models: Iterable[str] | None = None
) -> web.Application:
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
