"""Public routes under /api/v1."""

from __future__ import annotations

import orjson
from aiohttp import web

from tokenhub.accounts.service import get_user, key_row
from tokenhub.api.gemini import GeminiAPI, is_google_request
from tokenhub.api.presenters import anthropic_model, iso, model_entry, models_list
from tokenhub.billing.service import credits_summary
from tokenhub.billing.usage import request_record
from tokenhub.errors import InvalidRequest, NotFound
from tokenhub.limits.policy import Limits
from tokenhub.money import usd_number
from tokenhub.relay.embeddings import embeddings_for_key
from tokenhub.relay.serve import chat_for_key, completions_for_key
from tokenhub.storage.engine import as_utc
from tokenhub.surface import RouteGroup, authenticate, read_json
from tokenhub.tasks.service import ensure_webhook_secret


def _json(data: object) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _limits_view(limits: Limits) -> dict[str, object]:
    """rpm / tpm / concurrency as numbers, spend limits by period as USD (null: no limit)."""
    view: dict[str, object] = {}
    for name, value in limits.as_dict().items():
        if name.endswith("_nanos"):
            view[name.removesuffix("_nanos")] = usd_number(value) if value is not None else None
        else:
            view[name] = value
    return view


class PublicAPI(RouteGroup):
    def __init__(self, app: web.Application) -> None:
        super().__init__(app)
        self._models_cache: tuple[int, bytes] = (-2, b"")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/models", self.list_models),
            web.get("/api/v1/models/{model_id:.+}", self.get_model),  # ids carry "/": openai/gpt-4.1
            web.post("/api/v1/chat/completions", self.chat_completions),
            web.post("/api/v1/embeddings", self.embeddings),
            web.post("/api/v1/completions", self.completions),
            web.get("/api/v1/credits", self.credits),
            web.get("/api/v1/key", self.key),
            web.get("/api/v1/generation", self.generation),
        ]

    async def list_models(self, request: web.Request) -> web.Response:
        if is_google_request(request):  # Gemini's SDKs and CLI under the base URL /api, version v1
            return await GeminiAPI(request.app).list_models(request)
        if "anthropic-version" in request.headers:  # the Anthropic SDKs' models.list: their page shape
            data = [anthropic_model(m) for m in self.gw.directory.catalog.models.values() if m.enabled and m.kind == "chat"]
            return _json({"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                          "last_id": data[-1]["id"] if data else None})  # fmt: skip
        directory = self.gw.directory
        if self._models_cache[0] != directory.version:
            self._models_cache = (directory.version, models_list(directory.catalog))
        return web.Response(body=self._models_cache[1], content_type="application/json")

    async def get_model(self, request: web.Request) -> web.Response:
        """One model, as the list shows it (public, like the list); 404 in the API's format when unknown or disabled."""
        if is_google_request(request):
            return await GeminiAPI(request.app).get_model(request)
        catalog = self.gw.directory.catalog
        model = catalog.resolve(request.match_info["model_id"])
        if "anthropic-version" in request.headers:  # the Anthropic SDKs' models.retrieve: ModelInfo
            return _json(anthropic_model(model))
        return web.Response(body=orjson.dumps(model_entry(model, catalog)), content_type="application/json")

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        key = authenticate(request, self.gw.directory)
        payload, size = await read_json(request, self.gw.settings.max_body_bytes)
        return await chat_for_key(self.gw, request, key, payload, size)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        key = authenticate(request, self.gw.directory)
        payload, size = await read_json(request, self.gw.settings.max_body_bytes)
        return await completions_for_key(self.gw, request, key, payload, size)

    async def embeddings(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        payload, _ = await read_json(request, self.gw.settings.max_body_bytes)
        return await embeddings_for_key(self.gw, request, key, payload)

    async def credits(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        async with self.gw.engine.connect() as conn:
            summary = await credits_summary(conn, key.user_id)
        return _json(
            {
                "data": {
                    "total_credits": usd_number(summary["total_credits_nanos"]),
                    "total_usage": usd_number(summary["total_usage_nanos"]),
                    "balance": usd_number(summary["balance_nanos"]),
                    "held": usd_number(summary["held_nanos"]),
                }
            }
        )

    async def key(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        async with self.gw.engine.begin() as conn:
            row = await key_row(conn, key.id)
            account = await get_user(conn, key.user_id)
            webhook_secret = await ensure_webhook_secret(conn, key.user_id)
        limit = row.limit_nanos
        return _json(
            {
                "data": {
                    "id": row.id,
                    "label": row.key_prefix,
                    "name": row.name,
                    "limit": usd_number(limit) if limit is not None else None,
                    "usage": usd_number(row.used_nanos),
                    "held": usd_number(row.held_nanos),
                    "limit_remaining": usd_number(max(limit - row.used_nanos - row.held_nanos, 0)) if limit is not None else None,
                    "models": row.models.split(",") if row.models else None,
                    "expires_at": iso(as_utc(row.expires_at)),
                    "created_at": iso(as_utc(row.created_at)),
                    "webhook_secret": webhook_secret,  # verifies video task callbacks (X-TokenHub-Signature)
                    "limits": {"key": _limits_view(Limits.of(row)), "account": _limits_view(Limits.of(account))},
                }
            }
        )

    async def generation(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        gen_id = request.query.get("id", "").strip()
        if not gen_id:
            raise InvalidRequest("give the request id: /generation?id=gen-...", param="id")
        if len(gen_id) > 40:
            raise NotFound(f"no request {gen_id[:40]}… in this account", code="generation_not_found")
        async with self.gw.engine.connect() as conn:
            row = await request_record(conn, gen_id, key.user_id)
        if row is None:
            raise NotFound(f"no request {gen_id} in this account", code="generation_not_found")
        return _json(
            {
                "data": {
                    "id": row.id,
                    "model": row.model,
                    "created_at": iso(as_utc(row.created_at)),
                    "state": row.state,
                    "status": row.status,
                    "streamed": bool(row.stream),
                    "tokens_prompt": row.prompt_tokens,
                    "tokens_completion": row.completion_tokens,
                    "tokens_cached": row.cached_tokens,
                    "tokens_reasoning": row.reasoning_tokens,
                    "usage_estimated": bool(row.estimated),
                    "total_cost": usd_number(row.cost_nanos),
                    "latency": row.latency_ms,
                    "time_to_first_byte": row.ttfb_ms,
                    "finish_reason": row.finish_reason,
                    "http_status": row.http_status,
                    "error": row.error,
                    "api_key_id": row.key_id,
                }
            }
        )
