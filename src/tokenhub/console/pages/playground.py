"""The playground: streaming chat, image and video forms."""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Ctx, Pages, page


class PlaygroundPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/playground", self.index)]

    @page("user")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.playground"))
