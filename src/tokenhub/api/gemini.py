"""Google's Gemini API under the base URL ``/api``, for the google-genai SDKs and Gemini CLI.

    POST /api/v1beta/models/{model}:generateContent
    POST /api/v1beta/models/{model}:streamGenerateContent?alt=sse
    POST /api/v1beta/models/{model}:countTokens
    POST /api/v1beta/models/{model}:embedContent | :batchEmbedContents
    GET  /api/v1beta/models, /api/v1beta/models/{model}
    (and the same under /api/v1/; GET /api/v1/models answers Google's list to a request that carries
    a Google key header or ?key=, OpenAI's otherwise)

The key comes as ``x-goog-api-key``, ``?key=`` or a bearer token. Every catalog chat model answers
(``gemini-2.5-pro``, ``google/gemini-2.5-pro``, ``openai/gpt-4.1``), translated to chat for the relay
and billed like chat (endpoint ``gemini``); embedding models answer the embed methods. Errors use
Google's shape.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tokenhub.catalog.model import Model
from tokenhub.directory import KeyInfo
from tokenhub.errors import GatewayError, InvalidRequest, NotFound
from tokenhub.providers.gemini.inbound import translate_generate_request
from tokenhub.providers.gemini.responder import GeminiClientResponder, GeminiRequest, google_error
from tokenhub.relay.call import ChatCall
from tokenhub.relay.embeddings import embed, embedding_model, parse_embedding_job
from tokenhub.relay.relay import Relay
from tokenhub.surface import CALLER, RouteGroup, bearer_token, read_json
from tokenhub.tokens import prompt_estimate

VERSIONS = ("v1beta", "v1")


def google_response(err: GatewayError) -> web.Response:
    return web.Response(status=err.status, body=orjson.dumps(google_error(err.status, err.message)),
                        content_type="application/json", headers=err.headers)  # fmt: skip


def is_google_request(request: web.Request) -> bool:
    """A request in Google's dialect: its key in ``x-goog-api-key`` or ``?key=``."""
    return "x-goog-api-key" in request.headers or "key" in request.query


def model_resource(model: Model) -> dict[str, Any]:
    methods = ["embedContent", "batchEmbedContents"] if model.kind == "embedding" else ["generateContent", "countTokens"]
    return {"name": f"models/{model.id.removeprefix('google/')}", "baseModelId": model.upstream_id, "version": "001",
            "displayName": model.name, "description": f"{model.name} through TokenHub ({model.id})",
            "inputTokenLimit": model.context_length or 0, "outputTokenLimit": model.max_output_tokens or 0,
            "supportedGenerationMethods": methods}  # fmt: skip


class GeminiAPI(RouteGroup):
    def routes(self) -> list[web.RouteDef]:
        out = []
        for version in VERSIONS:
            out.append(web.post(f"/api/{version}/models/{{name:.+}}", self.model_action))
            if version == "v1beta":  # /api/v1/models is OpenAI's too: PublicAPI hands Google's requests over
                out += [web.get(f"/api/{version}/models", self.list_models), web.get(f"/api/{version}/models/{{name:.+}}", self.get_model)]
        return out

    def _key(self, request: web.Request) -> KeyInfo:
        token = request.headers.get("x-goog-api-key") or request.query.get("key") or bearer_token(request)
        key = self.gw.directory.authenticate(token)
        request[CALLER] = key
        return key

    async def model_action(self, request: web.Request) -> web.StreamResponse:
        name, _, method = request.match_info["name"].rpartition(":")
        try:
            key = self._key(request)
            if method in ("generateContent", "streamGenerateContent"):
                return await self._generate(request, key, name, stream=method == "streamGenerateContent")
            if method == "countTokens":
                return await self._count(request, key, name)
            if method in ("embedContent", "batchEmbedContents"):
                return await self._embed(request, key, name, batch=method == "batchEmbedContents")
            raise NotFound(f"the method '{method or request.match_info['name']}' is not served here", code="route_not_found")
        except GatewayError as err:
            return google_response(err)

    def _model(self, name: str, key: KeyInfo) -> Model:
        return Relay(self.gw).resolve(name.removeprefix("models/"), key)

    async def _generate(self, request: web.Request, key: KeyInfo, name: str, *, stream: bool) -> web.StreamResponse:
        if stream and request.query.get("alt") != "sse":
            raise InvalidRequest("streamGenerateContent is served as server-sent events: add ?alt=sse (the SDKs do)")
        body, size = await read_json(request, self.gw.settings.max_body_bytes)
        relay = Relay(self.gw)
        model = self._model(name, key)
        call = ChatCall.parse(translate_generate_request(body, model.id, stream=stream))
        native = GeminiRequest(body, stream)  # for Gemini channels: the body as it came
        return await relay.handle(request, key, call, size, GeminiClientResponder(model.id), model=model, client_request=native)

    async def _count(self, request: web.Request, key: KeyInfo, name: str) -> web.Response:
        """The prompt's tokens, the gateway's estimate (about 4 characters a token); free, never sent upstream."""
        body, _ = await read_json(request, self.gw.settings.max_body_bytes)
        model = self._model(name, key)
        inner = body.get("generateContentRequest") if isinstance(body, dict) and "generateContentRequest" in body else body
        payload = translate_generate_request(inner, model.id, stream=False)
        return web.json_response({"totalTokens": prompt_estimate(payload)})

    async def _embed(self, request: web.Request, key: KeyInfo, name: str, *, batch: bool) -> web.Response:
        body, _ = await read_json(request, self.gw.settings.max_body_bytes)
        model = embedding_model(self.gw, key, name.removeprefix("models/"))
        requests = body.get("requests") if batch and isinstance(body, dict) else [body]
        if not isinstance(requests, list) or not requests:
            raise InvalidRequest("* BatchEmbedContentsRequest.requests: requests must not be empty")
        texts, dimensions = [], None
        for i, item in enumerate(requests):
            content = item.get("content") if isinstance(item, dict) else None
            parts = content.get("parts") if isinstance(content, dict) else None
            text = "".join(p.get("text") or "" for p in parts or () if isinstance(p, dict))
            if not text:
                raise InvalidRequest(f"* EmbedContentRequest.content: request {i} has no text to embed")
            texts.append(text)
            dimensions = item.get("outputDimensionality", dimensions)
        job = parse_embedding_job({"input": texts, "dimensions": dimensions}, model)  # the same checks as /embeddings
        done = await embed(self.gw, request, key, model, job)
        vectors = [{"values": v} for v in done.vectors]
        return web.json_response({"embeddings": vectors} if batch else {"embedding": vectors[0]})

    async def list_models(self, request: web.Request) -> web.Response:
        try:
            self._key(request)
        except GatewayError as err:
            return google_response(err)
        models = [m for m in self.gw.directory.catalog.models.values() if m.enabled and m.kind in ("chat", "embedding")]
        return web.json_response({"models": [model_resource(m) for m in models]})

    async def get_model(self, request: web.Request) -> web.Response:
        try:
            self._key(request)
            name = request.match_info.get("name") or request.match_info["model_id"]  # ours, or PublicAPI's route under /api/v1
            model = self.gw.directory.catalog.resolve(name.removeprefix("models/"))
            if model.kind not in ("chat", "embedding"):
                raise NotFound(f"models/{model.id} is not a model of this API", code="model_not_found")
        except GatewayError as err:
            return google_response(err)
        return web.json_response(model_resource(model))
