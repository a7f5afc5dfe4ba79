"""What every HTTP surface (api, admin, console) shares: the app's Gateway and the route groups that use
it, request ids, the caller's key, and a JSON body read with the errors the API promises."""

from __future__ import annotations

import itertools
import secrets
from typing import Any, Callable, Iterable, Iterator

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource, AbstractRoute

from tokenhub.directory import Directory, KeyInfo
from tokenhub.errors import AuthenticationFailed, InvalidRequest, PayloadTooLarge
from tokenhub.gateway import Gateway
from tokenhub.json_body import parse_json
from tokenhub.request_keys import RATE_HEADERS, REQUEST_ID

GATEWAY = web.AppKey("gateway", Gateway)
CALLER = web.RequestKey("caller", KeyInfo)


class RouteGroup:
    """Routes that share the app's Gateway (looked up per request: it exists once the app started)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    @property
    def gw(self) -> Gateway:
        return self.app[GATEWAY]

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError


class DeferredRoutes(AbstractResource):
    """Routes under ``prefix`` whose module loads on the first request that may be theirs.

    The app's router asks a resource about a request when no resource with a longer prefix matched
    it; this one builds the routes it stands for (``build``) on that first ask and from then on
    answers as they do. So what only the console, the admin API or the media endpoints need stays out
    of a process that serves only chat (idle memory: bench/README.md, sessions 11 and 12). The first
    such request pays the import, once per process (~50 ms for the console, 10 ms for the admin API,
    less for images and videos).
    """

    def __init__(self, prefix: str, build: Callable[[], Iterable[web.AbstractRouteDef]]) -> None:
        super().__init__()
        self._prefix = prefix
        self._build: Callable[[], Iterable[web.AbstractRouteDef]] | None = build
        self._router = web.UrlDispatcher()

    @property
    def canonical(self) -> str:
        return self._prefix

    @property
    def loaded(self) -> bool:
        return self._build is None

    async def resolve(self, request: web.Request) -> tuple[Any, set[str]]:
        if self._build is not None:
            self._router.add_routes(self._build())
            self._build = None
        match = await self._router.resolve(request)
        error = match.http_exception
        if error is None:
            return match, set()
        return None, set(getattr(error, "allowed_methods", ()))

    def url_for(self, **kwargs: str) -> Any:
        raise NotImplementedError("deferred routes are not named")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("deferred routes are not mounted under a prefix")

    def get_info(self) -> dict[str, Any]:
        return {"prefix": self._prefix, "loaded": self.loaded}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._router.routes())

    def __iter__(self) -> Iterator[AbstractRoute]:
        return iter(self._router.routes())


class RequestIds:
    """Request ids: ``gen-`` + 64 random bits fixed per process + a counter (unique, and cheap:
    no system call per request). They are not secrets: /generation answers only the owner."""

    def __init__(self) -> None:
        self._prefix = "gen-" + secrets.token_hex(8)
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():012x}"


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response says which request it answers (and what its limits leave)."""
    request_id = request.get(REQUEST_ID)
    if request_id and "X-Request-Id" not in response.headers:
        response.headers["X-Request-Id"] = request_id
    rate_headers = request.get(RATE_HEADERS)
    if rate_headers:
        for name, value in rate_headers.items():
            response.headers.setdefault(name, value)


def bearer_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
    else:
        token = request.headers.get("x-api-key") or ""
    if not token.isascii():  # keys are ASCII; other bytes arrive as surrogates that cannot even be hashed
        raise AuthenticationFailed("Invalid API key: keys are ASCII text")
    return token or None


def authenticate(request: web.Request, directory: Directory) -> KeyInfo:
    key = directory.authenticate(bearer_token(request))
    request[CALLER] = key
    return key


async def read_json(request: web.Request, max_bytes: int) -> tuple[Any, int]:
    """The parsed body and its size in bytes; 413 over the limit, 400 for anything not JSON or nested too deep."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"the request body is larger than {max_bytes} bytes")
    body = await request.read()
    if not body:
        raise InvalidRequest("the request body is empty; send a JSON object")
    return parse_json(body), len(body)
