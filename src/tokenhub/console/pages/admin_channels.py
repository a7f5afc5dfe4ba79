"""Operators: upstream channels (add, edit, disable, test, statistics)."""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Ctx, Pages, page


class ChannelsPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/channels", self.index)]

    @page("admin")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.channels"))
