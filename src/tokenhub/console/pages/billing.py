"""Balance and ledger history, code redemption and Stripe top-ups."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tokenhub.accounts.sessions import is_https
from tokenhub.billing import codes as codes_service
from tokenhub.billing import payments
from tokenhub.billing import service as billing
from tokenhub.console.core import Ctx, Pages, page, usd
from tokenhub.digits import whole_number
from tokenhub.errors import GatewayError, InvalidRequest, NotFound
from tokenhub.money import MoneyError, format_usd, usd_to_nanos

LEDGER_PAGE = 50


class BillingPages(Pages):
    NOTICES = {"checkout_cancelled": "billing.notice_cancelled"}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/billing", self.billing_page),
            web.post("/billing/redeem", self.redeem_code),
            web.post("/billing/topup", self.top_up),
        ]

    @property
    def settings(self) -> Any:
        return self.gw.settings

    @page("user")
    async def billing_page(self, ctx: Ctx) -> web.StreamResponse:
        return await self.render_billing(ctx)

    async def render_billing(self, ctx: Ctx, *, status: int = 200, **values: Any) -> web.Response:
        user_id = ctx.user_id
        query = ctx.request.query
        before_id = whole_number(query.get("before"))
        checkout = None
        async with self.gw.engine.connect() as conn:
            summary = await billing.credits_summary(conn, user_id)
            entries = await billing.ledger_history(conn, user_id, LEDGER_PAGE + 1, before_id)
            if query.get("checkout") == "success" and query.get("session_id"):
                try:
                    checkout = await payments.get_payment(conn, query["session_id"][:255], user_id=user_id)
                except NotFound:
                    checkout = {"status": "unknown"}
        older = entries[LEDGER_PAGE - 1]["id"] if len(entries) > LEDGER_PAGE else None
        values.setdefault("redeemed", None)
        values.setdefault("redeem_error", None)
        values.setdefault("topup_error", None)
        values.setdefault("topup_amount", "")
        return self.render(
            ctx,
            "billing.html",
            status=status,
            title=ctx.t("billing.title"),
            summary=summary,
            entries=entries[:LEDGER_PAGE],
            older=older,
            newer=before_id is not None,
            checkout=checkout,
            stripe=payments.stripe_configured(self.settings),
            min_topup=format_usd(payments.MIN_TOPUP_NANOS),
            max_topup=format_usd(payments.MAX_TOPUP_NANOS),
            **values,
        )

    @page("user")
    async def redeem_code(self, ctx: Ctx) -> web.StreamResponse:
        try:
            async with self.gw.engine.begin() as conn:
                amount = await codes_service.redeem(conn, ctx.user_id, ctx.form.get("code", ""))
        except InvalidRequest:
            return await self.render_billing(ctx, status=400, redeem_error=ctx.t("error.code.invalid_code"))
        return await self.render_billing(ctx, redeemed=usd(amount))

    @page("user")
    async def top_up(self, ctx: Ctx) -> web.StreamResponse:
        text = ctx.form.get("amount", "").strip()
        if not payments.stripe_configured(self.settings):
            return await self.render_billing(ctx, status=503)  # the page explains how to configure Stripe
        try:
            amount = usd_to_nanos(text.lstrip("$").strip())
        except MoneyError:
            amount = 0
        base = f"{'https' if is_https(ctx.request) else 'http'}://{ctx.request.host}"
        try:
            checkout = await payments.create_checkout(
                self.gw.engine,
                self.settings,
                ctx.user_id,
                amount,
                f"{base}/billing?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
                f"{base}/billing?done=checkout_cancelled",
            )
        except InvalidRequest:
            return await self.render_billing(
                ctx, status=400, topup_amount=text,
                topup_error=ctx.t("billing.topup_invalid", min=format_usd(payments.MIN_TOPUP_NANOS), max=format_usd(payments.MAX_TOPUP_NANOS)),
            )
        except GatewayError as err:
            return await self.render_billing(ctx, status=err.status, topup_amount=text, topup_error=ctx.t("billing.topup_failed"))
        return web.Response(status=303, headers={"Location": str(checkout["url"])})
