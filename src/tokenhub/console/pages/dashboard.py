"""The home page: balance, spend and recent requests."""

from __future__ import annotations

from aiohttp import web

from tokenhub.billing import service as billing
from tokenhub.console.core import Ctx, Pages, page


class DashboardPages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.dashboard)]

    @page("user")
    async def dashboard(self, ctx: Ctx) -> web.StreamResponse:
        async with self.gw.engine.connect() as conn:
            summary = await billing.credits_summary(conn, ctx.user_id)
        return self.render(ctx, "dashboard.html", title=ctx.t("dashboard.title"), summary=summary)
