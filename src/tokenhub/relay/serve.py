"""A chat request for an authenticated key, as every surface serves it: the API's routes and the console's
playground run the same path, so neither reaches into the other (images and videos: ``serve_media``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tokenhub.directory import KeyInfo
from tokenhub.errors import InvalidRequest
from tokenhub.providers.openai.legacy import CompletionsRequest, CompletionsResponder, chat_view
from tokenhub.providers.openai.responder import OpenAIResponder
from tokenhub.relay.call import ChatCall
from tokenhub.relay.relay import Relay

if TYPE_CHECKING:  # the gateway wires the relay in: a type only
    from tokenhub.gateway import Gateway


async def chat_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: object, size: int) -> web.StreamResponse:
    """``POST /chat/completions`` for an authenticated key."""
    call = ChatCall.parse(payload)
    relay = Relay(gw)
    model = relay.resolve(call.model_name, key)
    responder = OpenAIResponder(model.id, call.include_usage, exclude_reasoning=call.extensions.exclude_reasoning)
    return await relay.handle(request, key, call, size, responder, model=model)


async def completions_for_key(gw: Gateway, request: web.Request, key: KeyInfo, payload: object, size: int) -> web.StreamResponse:
    """``POST /completions`` (legacy text completions) for an authenticated key: models marked ``completions``."""
    if not isinstance(payload, dict):
        raise InvalidRequest("the request body must be a JSON object")
    call = ChatCall.parse(chat_view(payload))
    relay = Relay(gw)
    model = relay.resolve(call.model_name, key)
    if not model.completions:
        raise InvalidRequest(f"'{model.id}' does not serve legacy text completions; use /api/v1/chat/completions", param="model")
    responder = CompletionsResponder(model.id, call.include_usage)
    return await relay.handle(request, key, call, size, responder, model=model, client_request=CompletionsRequest(payload, call.stream))
