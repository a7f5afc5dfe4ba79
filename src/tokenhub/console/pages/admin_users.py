"""Operators: users (search, view, adjust credits, disable, make admin)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web

from tokenhub.accounts import service as accounts
from tokenhub.billing import service as billing
from tokenhub.console.core import Ctx, Pages, page, redirect
from tokenhub.console.forms import last_day, parse_usd
from tokenhub.console.pages.admin_overview import admin_error_text
from tokenhub.digits import whole_number
from tokenhub.errors import GatewayError, NotFound
from tokenhub.money import format_usd
from tokenhub.storage.engine import utc_now

RECENT_LEDGER = 20
SEARCH_LIMIT = 100

# POST /admin/users/{id}/<action>: the service call and the notice it ends with.
ACTIONS: dict[str, tuple[Callable[..., Awaitable[Any]], dict[str, bool], str]] = {
    "disable": (accounts.set_disabled, {"disabled": True}, "user_disabled"),
    "enable": (accounts.set_disabled, {"disabled": False}, "user_enabled"),
    "make-admin": (accounts.set_admin, {"is_admin": True}, "admin_granted"),
    "remove-admin": (accounts.set_admin, {"is_admin": False}, "admin_removed"),
}


# The account limits form: field name (as limits.policy.parse_changes reads it) and whether it is USD.
LIMIT_FIELDS = (("rpm", False), ("tpm", False), ("concurrency", False), ("daily_limit", True), ("weekly_limit", True),
                ("monthly_limit", True), ("limit", True))


def limits_values(limits: dict[str, Any]) -> dict[str, str]:
    values = {}
    for name, is_usd in LIMIT_FIELDS:
        value = limits.get(f"{name}_nanos" if is_usd else name)
        values[name] = "" if value is None else format_usd(value) if is_usd else str(value)
    return values


def user_id_of(ctx: Ctx) -> int:
    user_id = whole_number(ctx.request.match_info["user_id"], 12)
    if user_id is None:
        raise NotFound("no such user", code="user_not_found")
    return user_id


class UsersPages(Pages):
    NOTICES = {
        "credited": "admin.users.notice_credited",
        "user_disabled": "admin.users.notice_disabled",
        "user_enabled": "admin.users.notice_enabled",
        "admin_granted": "admin.users.notice_admin_granted",
        "admin_removed": "admin.users.notice_admin_removed",
        "limits_saved": "admin.users.notice_limits_saved",
    }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/users", self.index),
            web.get("/admin/users/{user_id}", self.show),
            web.post("/admin/users/{user_id}/credits", self.credits),
            web.post("/admin/users/{user_id}/limits", self.limits),
            web.post("/admin/users/{user_id}/{action}", self.change),
        ]

    @page("admin")
    async def index(self, ctx: Ctx) -> web.StreamResponse:
        query = ctx.request.query.get("q", "").strip()[:320]
        async with self.gw.engine.connect() as conn:
            found = await accounts.list_users(conn, query or None, limit=SEARCH_LIMIT + 1)
        return self.render(
            ctx, "admin_users.html", title=ctx.t("admin.users.title"), query=query, users=found[:SEARCH_LIMIT],
            more=len(found) > SEARCH_LIMIT, limit=SEARCH_LIMIT,
        )

    @page("admin")
    async def show(self, ctx: Ctx) -> web.StreamResponse:
        return await self.render_user(ctx, user_id_of(ctx))

    async def render_user(self, ctx: Ctx, user_id: int, *, status: int = 200, error: str | None = None,
                          form: dict[str, str] | None = None, limits_form: dict[str, str] | None = None,
                          limits_error: str | None = None) -> web.Response:
        async with self.gw.engine.connect() as conn:
            row = await accounts.get_user(conn, user_id)
            user = accounts.user_dict(row)
            summary = await billing.credits_summary(conn, user_id)
            keys = await accounts.list_keys(conn, user_id)
            entries = await billing.ledger_history(conn, user_id, limit=RECENT_LEDGER)
        now = utc_now()
        for key in keys:
            key["status"] = "revoked" if key["revoked_at"] else "expired" if key["expires_at"] and key["expires_at"] <= now else "active"
            key["expires_on"] = last_day(key["expires_at"])
        return self.render(
            ctx, "admin_user.html", status=status, title=user["email"], shown=user, summary=summary, keys=keys, entries=entries,
            error=error, form=form or {"amount": "", "note": ""}, is_self=user_id == ctx.user_id,
            limit_fields=LIMIT_FIELDS, limits_form=limits_form or limits_values(accounts.account_limits(row)),
            limits_error=limits_error,
        )

    @page("admin")
    async def limits(self, ctx: Ctx) -> web.StreamResponse:
        """The account's limits: every field sent; an empty one means no limit."""
        user_id = user_id_of(ctx)
        form = {name: ctx.form.get(name, "").strip() for name, _ in LIMIT_FIELDS}
        try:
            async with self.gw.engine.begin() as conn:
                await accounts.set_account_limits(conn, user_id, form)
        except NotFound:
            raise
        except GatewayError as err:
            return await self.render_user(ctx, user_id, status=err.status, limits_form=form, limits_error=admin_error_text(ctx, err))
        await self.gw.directory.refresh_if_changed()
        return redirect(f"/admin/users/{user_id}?done=limits_saved")

    @page("admin")
    async def credits(self, ctx: Ctx) -> web.StreamResponse:
        user_id = user_id_of(ctx)
        form = {"amount": ctx.form.get("amount", "").strip(), "note": ctx.form.get("note", "").strip()}
        try:
            amount = parse_usd(form["amount"], "amount")
        except GatewayError as err:
            return await self.render_user(ctx, user_id, status=400, error=admin_error_text(ctx, err), form=form)
        try:
            async with self.gw.engine.begin() as conn:
                await billing.add_credits(conn, user_id, amount, note=form["note"] or None)
        except NotFound:
            raise
        except GatewayError as err:
            # the service refuses a debit below zero (atomically); the page only words it
            text = ctx.t("admin.users.below_zero") if err.param == "amount" and amount < 0 else admin_error_text(ctx, err)
            return await self.render_user(ctx, user_id, status=400, error=text, form=form)
        return redirect(f"/admin/users/{user_id}?done=credited")

    @page("admin")
    async def change(self, ctx: Ctx) -> web.StreamResponse:
        user_id = user_id_of(ctx)
        action = ACTIONS.get(ctx.request.match_info["action"])
        if action is None:
            raise NotFound("no such page")
        service, flag, notice = action
        if ctx.request.match_info["action"] == "make-admin":  # step-up: the password or a current code again
            error = await self.shell.confirm_step_up(ctx)
            if error:
                return await self.render_user(ctx, user_id, status=403, error=error)
        try:
            async with self.gw.engine.begin() as conn:
                await service(conn, user_id, *flag.values(), acting_user_id=ctx.user_id)
        except NotFound:
            raise
        except GatewayError as err:
            return await self.render_user(ctx, user_id, status=err.status, error=admin_error_text(ctx, err))
        await self.gw.directory.refresh_if_changed()  # a disabled user's keys stop at once in this process
        return redirect(f"/admin/users/{user_id}?done={notice}")
