"""The playground: streaming chat, image and video generation, billed exactly like the API.

Every request goes through the path the API serves (``relay.serve.chat_for_key``,
``relay.serve_media.images_for_key`` / ``video_for_key``, ``tasks.service.get_task``) with the signed-in
user's API key named "Playground" (created on first use, listed on /keys like any key; revoked,
it is replaced by a new one). So holds, limits, settlement, the ledger and ``usage.cost`` are the
API's, to the nano. The key is found by the session's user id only: no request names a key.

The JSON endpoints take form fields (``csrf`` checked like every console POST, plus the same-origin
check) and answer in the API's format, errors included (401 signed out, 403 bad CSRF token):

    POST /playground/chat           model, messages (a JSON array), max_tokens?, temperature?  -> SSE stream
    POST /playground/images         model, prompt, size?, n?                                   -> the images
    POST /playground/videos         model, prompt, duration?, resolution?, mode?               -> the new task
    GET  /playground/videos/{id}    this user's task
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import orjson
from aiohttp import web

from tokenhub.accounts import service as accounts
from tokenhub.accounts.service import live_key_ids
from tokenhub.catalog.model import Catalog, Model
from tokenhub.console.core import CsrfFailed, Ctx, Pages, Shell, page
from tokenhub.console.forms import parse_int
from tokenhub.console.pages.catalog import enabled_models
from tokenhub.console.pages.recovery import require_verified_email
from tokenhub.directory import Directory, KeyInfo
from tokenhub.errors import AuthenticationFailed, InvalidRequest, PermissionDenied
from tokenhub.json_body import parse_json
from tokenhub.relay.serve import chat_for_key
from tokenhub.relay.serve_media import images_for_key, video_for_key
from tokenhub.tasks.service import get_task

PLAYGROUND_KEY = "Playground"
MAX_TOKENS = 1_000_000


def _json(data: object) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json", headers={"Cache-Control": "no-store"})


def _text(form: Mapping[str, str], name: str, limit: int = 200) -> str:
    return str(form.get(name, "")).strip()[:limit]


def chat_payload(form: Mapping[str, str]) -> dict[str, Any]:
    """The /chat/completions body the form stands for: always streamed, always with usage (and cost) at the end."""
    try:
        messages = parse_json(form.get("messages") or "", what="'messages'")
    except InvalidRequest as err:
        raise InvalidRequest(f"'messages' must be a JSON array of messages: {err.message}", param="messages") from None
    payload: dict[str, Any] = {
        "model": _text(form, "model"),
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if _text(form, "max_tokens"):
        payload["max_tokens"] = parse_int(_text(form, "max_tokens"), "max_tokens", low=1, high=MAX_TOKENS)
    if _text(form, "temperature"):
        payload["temperature"] = parse_temperature(_text(form, "temperature"))
    return payload


def parse_temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 2:
        raise InvalidRequest("'temperature' must be a number from 0 to 2", param="temperature")
    return value


def image_payload(form: Mapping[str, str]) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": _text(form, "model"), "prompt": _text(form, "prompt", 4000), "response_format": "url"}
    payload["n"] = parse_int(_text(form, "n"), "n", low=1, high=10) if _text(form, "n") else 1
    if _text(form, "size"):
        payload["size"] = _text(form, "size", 40)
    return payload


def video_payload(form: Mapping[str, str]) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": _text(form, "model"), "prompt": _text(form, "prompt", 4000)}
    if _text(form, "duration"):
        payload["duration"] = parse_int(_text(form, "duration"), "duration", low=1, high=600)
    for name in ("resolution", "mode"):
        if _text(form, name):
            payload[name] = _text(form, name, 40)
    return payload


def playable(catalog: Catalog, directory: Directory, kind: str) -> list[Model]:
    """The enabled models of a kind that some channel serves (the others could only fail)."""
    return [m for m in enabled_models(catalog) if m.kind == kind and directory.routes(m.id)]


def model_options(models: list[Model], catalog: Catalog) -> list[tuple[str, list[Model]]]:
    """Models grouped under their provider's name, in the catalog's order."""
    names = {f.id: f.name for f in catalog.families}
    groups: dict[str, list[Model]] = {}
    for model in models:
        groups.setdefault(names.get(model.family, model.family), []).append(model)
    return list(groups.items())


class PlaygroundPages(Pages):
    def __init__(self, shell: Shell) -> None:
        super().__init__(shell)
        self._key_lock = asyncio.Lock()  # one Playground key per user, even when the first requests race

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/playground", self.index),
            web.post("/playground/chat", self.chat),
            web.post("/playground/images", self.images),
            web.post("/playground/videos", self.create_video),
            web.get("/playground/videos/{task_id}", self.get_video),
        ]

    @page("user")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        directory = self.gw.directory
        catalog = directory.catalog
        chosen = ctx.request.query.get("model", "")
        kinds = {kind: playable(catalog, directory, kind) for kind in ("chat", "image", "video")}
        return self.render(
            ctx, "playground.html", title=ctx.t("playground.title"), chosen=chosen, key_name=PLAYGROUND_KEY,
            chat_models=model_options(kinds["chat"], catalog), image_models=kinds["image"], video_models=kinds["video"],
        )  # fmt: skip

    # -- the API, for the signed-in user -------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        ctx, key = await self._caller(request)
        payload = chat_payload(ctx.form)
        return await chat_for_key(self.gw, request, key, payload, len(orjson.dumps(payload)))

    async def images(self, request: web.Request) -> web.StreamResponse:
        ctx, key = await self._caller(request)
        response = await images_for_key(self.gw, request, key, image_payload(ctx.form))
        response.headers["Cache-Control"] = "no-store"
        return response

    async def create_video(self, request: web.Request) -> web.StreamResponse:
        ctx, key = await self._caller(request)
        return _json(await video_for_key(self.gw, request, key, video_payload(ctx.form)))

    async def get_video(self, request: web.Request) -> web.StreamResponse:
        _, key = await self._caller(request, post=False)
        return _json(await get_task(self.gw, key, request.match_info["task_id"]))

    async def _caller(self, request: web.Request, *, post: bool = True) -> tuple[Ctx, KeyInfo]:
        """The signed-in user (401 otherwise), the CSRF-checked form of a POST (403 otherwise), and their key."""
        shell = self.shell
        ctx = await shell.context(request)
        if ctx.user is None:
            raise AuthenticationFailed("sign in to the console first", code="not_signed_in")
        require_verified_email(shell, ctx.user)  # TOKENHUB_SIGNUP_VERIFY=required: no Playground key either
        if post:
            try:
                ctx.form = await shell.checked_form(ctx)
            except CsrfFailed:
                message = "the form could not be verified: reload the page and try again"
                raise PermissionDenied(message, code="csrf_failed") from None
        return ctx, await self.playground_key(ctx.user_id)

    async def playground_key(self, user_id: int) -> KeyInfo:
        """The user's active key named "Playground" (the oldest, if several), created when there is none."""
        async with self._key_lock:
            key = await self._find_key(user_id)
            if key is None:
                async with self.gw.engine.begin() as conn:
                    await accounts.create_key(conn, user_id, name=PLAYGROUND_KEY)
                await self.gw.directory.refresh_if_changed()
                key = await self._find_key(user_id)
        assert key is not None
        return key

    async def _find_key(self, user_id: int) -> KeyInfo | None:
        async with self.gw.engine.connect() as conn:
            ids = await live_key_ids(conn, user_id, PLAYGROUND_KEY)
        if not ids:
            return None
        key = self.gw.directory.key_by_id(ids[0])  # the KeyInfo the API itself would use (limits included)
        if key is None:  # created by another process a moment ago: load it
            await self.gw.directory.refresh_if_changed()
            key = self.gw.directory.key_by_id(ids[0])
        return key
