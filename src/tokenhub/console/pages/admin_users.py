"""Operators: users (search, view, adjust credits, disable, make admin)."""

from __future__ import annotations

from aiohttp import web

from tokenhub.console.core import Ctx, Pages, page


class UsersPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/users", self.index)]

    @page("admin")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.users"))
