"""Usage: every request and video task, filters, CSV export."""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Ctx, Pages, page


class UsagePages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/usage", self.index)]

    @page("user")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.usage"))
