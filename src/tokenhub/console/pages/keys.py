"""API keys: create (shown once), list, revoke."""

from __future__ import annotations

from aiohttp import web

from tokenhub.accounts import service as accounts
from tokenhub.billing import usage
from tokenhub.console.core import Ctx, Pages, error_text, page, redirect
from tokenhub.console.forms import last_day, parse_usd
from tokenhub.console.pages.recovery import require_verified_email, verification_notice
from tokenhub.errors import GatewayError, InvalidRequest, NotFound
from tokenhub.storage.engine import utc_now


class KeysPages(Pages):
    NOTICES = {"revoked": "keys.notice_revoked"}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/keys", self.keys),
            web.post("/keys", self.keys),
            web.post("/keys/{key_id}/revoke", self.revoke_key),
        ]

    @page("user")
    async def keys(self, ctx: Ctx) -> web.StreamResponse:
        user_id = ctx.user_id
        created, error, status = None, None, 200
        form = {"name": "", "limit": "", "models": "", "expires": ""}
        if ctx.request.method == "POST":
            form = {name: ctx.form.get(name, "").strip() for name in form}
            try:
                require_verified_email(self.shell, ctx.user)  # TOKENHUB_SIGNUP_VERIFY=required
                limit = parse_usd(form["limit"], "limit") if form["limit"] else None
                async with self.gw.engine.begin() as conn:
                    plaintext, record = await accounts.create_key(
                        conn, user_id, name=form["name"] or None, limit_nanos=limit, models=form["models"] or None,
                        expires=form["expires"] or None,
                    )
                await self.gw.directory.refresh_if_changed()  # usable at once from this process
                created = {"key": plaintext, "name": record["name"]}
                form = {name: "" for name in form}
            except GatewayError as err:
                error, status = error_text(ctx.t, err), 400
        async with self.gw.engine.connect() as conn:
            rows = await accounts.list_keys(conn, user_id)
            totals = await usage.key_totals(conn, user_id)
        now = utc_now()
        for key in rows:
            key["usage"] = totals.get(key["id"], {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
            key["status"] = "revoked" if key["revoked_at"] else "expired" if key["expires_at"] and key["expires_at"] <= now else "active"
            key["expires_on"] = last_day(key["expires_at"])  # expires_at is the midnight after that day
        return self.render(
            ctx, "keys.html", status=status, title=ctx.t("keys.title"), keys=rows, created=created, error=error, form=form,
            verify=verification_notice(self.shell, ctx),
        )

    @page("user")
    async def revoke_key(self, ctx: Ctx) -> web.StreamResponse:
        key_id = ctx.request.match_info["key_id"]
        async with self.gw.engine.begin() as conn:
            try:
                key = await accounts.get_key(conn, key_id)
            except InvalidRequest:
                raise NotFound("no such key") from None
            if key["user_id"] != ctx.user_id:
                raise NotFound("no such key")  # another account's key: as if it did not exist
            await accounts.revoke_key(conn, key["id"])
        await self.gw.directory.refresh_if_changed()
        return redirect("/keys?done=revoked")
