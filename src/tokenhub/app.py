"""The app factory: one aiohttp application serving the public API, the admin API and the web console."""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

from aiohttp import web

from tokenhub.api.errors import HTML_NOT_FOUND, MAX_BODY, request_middleware
from tokenhub.api.gemini import GeminiAPI
from tokenhub.api.messages import MessagesAPI
from tokenhub.api.ops import OpsAPI
from tokenhub.api.responses import ResponsesAPI
from tokenhub.api.routes import PublicAPI
from tokenhub.api.stripe_webhook import StripeWebhookAPI
from tokenhub.config import Settings
from tokenhub.gateway import Gateway
from tokenhub.surface import GATEWAY, DeferredRoutes, echo_request_id
from tokenhub.tasks.poller import TaskPoller

if TYPE_CHECKING:
    from tokenhub.console.routes import Console

SETTINGS = web.AppKey("settings", Settings)


async def _lifespan(app: web.Application) -> AsyncIterator[None]:
    gateway = await Gateway.start(app[SETTINGS])
    app[GATEWAY] = gateway
    poller = TaskPoller(gateway)
    poller.start()

    async def drain(_app: web.Application) -> None:
        await gateway.drain()  # readiness fails; open requests get drain_timeout, then open streams are cut

    app.on_shutdown.append(drain)
    yield
    await poller.stop()
    await gateway.stop()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_middleware(settings.body_timeout, settings.body_min_rate)],
        # A connection that has not sent a complete request head this long after it opened (or after its
        # last response) is closed: aiohttp's keep-alive timer closes any connection still waiting for one.
        handler_args={"keepalive_timeout": settings.header_timeout},
    )
    app[SETTINGS] = settings
    app[MAX_BODY] = settings.max_body_bytes
    app.cleanup_ctx.append(_lifespan)
    app.on_response_prepare.append(echo_request_id)
    app.add_routes(PublicAPI(app).routes())
    app.add_routes(MessagesAPI(app).routes())
    app.add_routes(ResponsesAPI(app).routes())
    app.add_routes(GeminiAPI(app).routes())
    app.add_routes(OpsAPI(app).routes())
    app.add_routes(StripeWebhookAPI(app).routes())
    # Images and videos, the admin API and the console load with their first request (surface.DeferredRoutes).
    for prefix in MEDIA_PREFIXES:
        app.router.register_resource(DeferredRoutes(prefix, lambda prefix=prefix: _media_routes(app, prefix)))
    app.router.register_resource(DeferredRoutes("/api/admin", lambda: _admin_routes(app)))
    console = ConsoleOnFirstUse(app)
    app[CONSOLE] = console
    app.router.register_resource(DeferredRoutes("/", console.routes))
    app[HTML_NOT_FOUND] = console.not_found
    app.on_shutdown.append(console.shutdown)
    app.on_cleanup.append(console.cleanup)
    return app


MEDIA_PREFIXES = ("/api/v1/images", "/api/v1/videos")


def _media_routes(app: web.Application, prefix: str) -> list[web.RouteDef]:
    from tokenhub.api.media import MediaAPI

    return [route for route in MediaAPI(app).routes() if route.path.startswith(prefix + "/")]


def _admin_routes(app: web.Application) -> list[web.RouteDef]:
    from tokenhub.admin.routes import AdminAPI

    return AdminAPI(app).routes()


class ConsoleOnFirstUse:
    """The console's pages, and its page for an address that does not exist, built when first asked for;
    what its pages need done when the app shuts down and cleans up, done if they were built."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from tokenhub.console.routes import Console

            self._console = Console(self._app)
        return self._console

    def routes(self) -> list[web.AbstractRouteDef]:
        from tokenhub.console.render import STATIC

        return [*self.console.routes(), web.static("/static", STATIC)]

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return await self.console.not_found(request)

    async def shutdown(self, app: web.Application) -> None:
        await self._run(app, "on_shutdown")

    async def cleanup(self, app: web.Application) -> None:
        await self._run(app, "on_cleanup")

    async def _run(self, app: web.Application, signal: str) -> None:
        if self._console is not None:
            for hook in getattr(self._console.shell, signal):
                await hook(app)


CONSOLE = web.AppKey("console", ConsoleOnFirstUse)
