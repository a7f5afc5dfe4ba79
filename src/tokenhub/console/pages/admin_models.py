"""Operators: models and prices (enable, override prices, serving channels)."""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Ctx, Pages, page


class ModelsPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/models", self.index)]

    @page("admin")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.prices"))
