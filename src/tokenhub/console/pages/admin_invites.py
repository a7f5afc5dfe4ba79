"""Operators: sign-up invites (``TOKENHUB_SIGNUP=invite``): make a single-use link, see who used which, withdraw."""

from __future__ import annotations

from aiohttp import web

from tokenhub.accounts import links
from tokenhub.console.core import Ctx, Pages, page, redirect, site_url
from tokenhub.errors import NotFound

MAX_NOTE = 200


class InvitesPages(Pages):
    NOTICES = {"invite_withdrawn": "invites.notice_withdrawn"}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/invites", self.invites),
            web.post("/admin/invites", self.invites),
            web.post("/admin/invites/{invite_id}/withdraw", self.withdraw),
        ]

    @page("admin")
    async def invites(self, ctx: Ctx) -> web.StreamResponse:
        created = None
        if ctx.request.method == "POST":
            note = " ".join(ctx.form.get("note", "").split())[:MAX_NOTE] or None
            async with self.gw.engine.begin() as conn:
                token = await links.create_link(conn, "invite", user_id=ctx.user_id, note=note)
            created = f"{site_url(ctx.request)}/signup?invite={token}"
        async with self.gw.engine.connect() as conn:
            invites = await links.list_invites(conn)
        return self.render(
            ctx, "admin_invites.html", title=ctx.t("invites.title"), invites=invites, created=created,
            mode=self.gw.settings.signup, lifetime_days=links.LIFETIMES["invite"].days,
        )  # fmt: skip

    @page("admin")
    async def withdraw(self, ctx: Ctx) -> web.StreamResponse:
        async with self.gw.engine.begin() as conn:
            if not await links.withdraw_invite(conn, ctx.request.match_info["invite_id"][:64]):
                raise NotFound("no such open invite", code="not_found")
        return redirect("/admin/invites?done=invite_withdrawn")
