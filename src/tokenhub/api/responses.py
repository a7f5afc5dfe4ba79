"""OpenAI's Responses API: POST /api/v1/responses, and GET / DELETE / input_items of stored responses.

Every catalog chat model answers, translated to chat for the relay (providers/responses/), billed
exactly like chat. ``store`` (default true) keeps the response for the account
(accounts/stored_responses.py); ``previous_response_id`` continues from one. Errors use OpenAI's
format, like /chat/completions.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from tokenhub.accounts.stored_responses import delete_response, load_response, save_response
from tokenhub.errors import InvalidRequest, NotFound
from tokenhub.providers.responses.inbound import chat_payload, read_request
from tokenhub.providers.responses.items import ResponseShape, new_id
from tokenhub.providers.responses.passthrough import ResponsesClientRequest
from tokenhub.providers.responses.responder import ResponsesResponder
from tokenhub.relay.call import ChatCall
from tokenhub.relay.relay import Relay
from tokenhub.surface import RouteGroup, authenticate, read_json

MAX_ID = 64
MAX_PAGE = 100


class ResponsesAPI(RouteGroup):
    def __init__(self, app: web.Application) -> None:
        super().__init__(app)
        self._pending: dict[str, asyncio.Event] = {}  # streamed responses being stored (previous_response_id waits)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/responses", self.create),
            web.get("/api/v1/responses/{response_id}", self.retrieve),
            web.delete("/api/v1/responses/{response_id}", self.delete),
            web.get("/api/v1/responses/{response_id}/input_items", self.input_items),
        ]

    async def create(self, request: web.Request) -> web.StreamResponse:
        gw = self.gw
        key = authenticate(request, gw.directory)
        body, size = await read_json(request, gw.settings.max_body_bytes)
        ask = read_request(body)
        history: list[dict] = []
        if ask.previous_response_id is not None:
            history = (await self._stored(key.user_id, ask.previous_response_id, param="previous_response_id")).context
        call = ChatCall.parse(chat_payload(body, ask, history))
        relay = Relay(gw)
        model = relay.resolve(call.model_name, key)
        response_id = new_id("resp")
        responder = ResponsesResponder(model.id, ResponseShape(response_id, model.id, ask.echo, ask.previous_response_id, ask.store,
                                                              ask.metadata))  # fmt: skip
        done = self._pending[response_id] = asyncio.Event()
        try:
            native = ResponsesClientRequest(body, [*history, *ask.items], ask.stream)  # for OpenAI channels: as it came
            answer = await relay.handle(request, key, call, size, responder, model=model, client_request=native)
            if ask.store and responder.final is not None:
                context = [*history, *ask.items, *responder.final.get("output", [])]
                async with gw.engine.begin() as conn:
                    await save_response(conn, key.user_id, responder.final, ask.items, context)
            return answer
        finally:
            done.set()
            del self._pending[response_id]

    async def _stored(self, user_id: int, response_id: str, *, param: str | None = None):
        if len(response_id) <= MAX_ID:
            pending = self._pending.get(response_id)
            if pending is not None:  # a stream this process is still storing
                await pending.wait()
            async with self.gw.engine.connect() as conn:
                found = await load_response(conn, user_id, response_id)
            if found is not None:
                return found
        if param is not None:
            raise InvalidRequest(f"Previous response with id '{response_id[:MAX_ID]}' not found.", param=param,
                                 code="previous_response_not_found", status=404)  # fmt: skip
        raise NotFound(f"Response with id '{response_id[:MAX_ID]}' not found.", code="response_not_found")

    async def retrieve(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        stored = await self._stored(key.user_id, request.match_info["response_id"])
        return web.Response(body=orjson.dumps(stored.response), content_type="application/json")

    async def delete(self, request: web.Request) -> web.Response:
        key = authenticate(request, self.gw.directory)
        response_id = request.match_info["response_id"]
        async with self.gw.engine.begin() as conn:
            deleted = len(response_id) <= MAX_ID and await delete_response(conn, key.user_id, response_id)
        if not deleted:
            raise NotFound(f"Response with id '{response_id[:MAX_ID]}' not found.", code="response_not_found")
        return web.json_response({"id": response_id, "object": "response.deleted", "deleted": True})

    async def input_items(self, request: web.Request) -> web.Response:
        """The request's input items, OpenAI's list page: ``order`` (desc by default), ``limit`` (1-100, 20), ``after``."""
        key = authenticate(request, self.gw.directory)
        stored = await self._stored(key.user_id, request.match_info["response_id"])
        items = [{**item, "id": item.get("id") or f"item_{stored.id[5:21]}_{i}"} for i, item in enumerate(stored.input_items)]
        order = request.query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be asc or desc", param="order")
        if order == "desc":
            items.reverse()
        limit_text = request.query.get("limit", "20")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
            raise InvalidRequest(f"'limit' must be from 1 to {MAX_PAGE}", param="limit")
        after = request.query.get("after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[: int(limit_text)]
        return web.json_response({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None, "has_more": len(items) > len(page)})  # fmt: skip
