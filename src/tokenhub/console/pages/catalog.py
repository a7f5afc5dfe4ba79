"""The model catalog, grouped by provider, with code examples."""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Ctx, Pages, page


class CatalogPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/models", self.index)]

    @page("user")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.models"))
