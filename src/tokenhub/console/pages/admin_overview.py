"""Operators: requests, tokens, revenue against upstream cost, top customers, errors."""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Ctx, Pages, page


class OverviewPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin", self.index)]

    @page("admin")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.admin"))
