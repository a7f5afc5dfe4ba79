"""Two-factor sign-in: turning it on (a QR code drawn here, never by a third party), the second step of signing in,
recovery codes, and turning it off (step-up). See docs/console.md, "Two-factor sign-in"."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tokenhub.accounts import service as accounts
from tokenhub.accounts import two_factor
from tokenhub.console.core import PENDING_COOKIE, Ctx, Pages, page, redirect
from tokenhub.errors import NotFound


def qr_data_uri(uri: str) -> str:
    """The otpauth URI as a QR code: an SVG in a ``data:`` URI (the CSP allows ``img-src data:``)."""
    import segno  # loaded when someone first turns 2FA on: the request path never needs it

    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")


class TwoFactorPages(Pages):
    NOTICES = {
        "2fa_off": "two_factor.notice_off",
    }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/account/2fa", self.status),
            web.post("/account/2fa/setup", self.setup),
            web.post("/account/2fa/enable", self.enable),
            web.post("/account/2fa/disable", self.disable),
            web.post("/account/2fa/recovery-codes", self.regenerate),
            web.get("/account/2fa/{step}", self.back),  # a reloaded one-time page (data-forget-post)
            web.get("/login/2fa", self.second_step),
            web.post("/login/2fa", self.second_step),
        ]

    # -- the account's page ------------------------------------------------------------------------

    async def render_status(self, ctx: Ctx, *, status: int = 200, error: str | None = None) -> web.Response:
        async with self.gw.engine.connect() as conn:
            enabled = await two_factor.is_enabled(conn, ctx.user_id)
            left = await two_factor.codes_left(conn, ctx.user_id) if enabled else 0
        required = self.required(ctx)
        return self.render(
            ctx,
            "two_factor.html",
            status=status,
            title=ctx.t("two_factor.title"),
            enabled=enabled,
            codes_left=left,
            error=error,
            required=required,
        )

    def required(self, ctx: Ctx) -> bool:
        return bool(ctx.user and ctx.user["is_admin"] and self.gw.settings.require_admin_2fa)

    @page("user")
    async def status(self, ctx: Ctx) -> web.StreamResponse:
        return await self.render_status(ctx)

    @page("user")
    async def back(self, ctx: Ctx) -> web.StreamResponse:
        return redirect("/account/2fa")

    async def render_setup(self, ctx: Ctx, secret: str, *, status: int = 200, error: str | None = None) -> web.Response:
        assert ctx.user is not None
        uri = two_factor.provisioning_uri(secret, ctx.user["email"])
        grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
        return self.render(
            ctx,
            "two_factor_setup.html",
            status=status,
            title=ctx.t("two_factor.setup_title"),
            qr=qr_data_uri(uri),
            secret=grouped,
            error=error,
        )

    @page("user")
    async def setup(self, ctx: Ctx) -> web.StreamResponse:
        """A new secret (not in force until confirmed with a code), shown as a QR code and as text."""
        async with self.gw.engine.begin() as conn:
            if await two_factor.is_enabled(conn, ctx.user_id):
                return redirect("/account/2fa")
            secret = await two_factor.begin(conn, self.gw.box, ctx.user_id)
        return await self.render_setup(ctx, secret)

    @page("user")
    async def enable(self, ctx: Ctx) -> web.StreamResponse:
        async with self.gw.engine.begin() as conn:
            secret = await two_factor.pending_secret(conn, self.gw.box, ctx.user_id)
            if secret is None:  # already on, or never started
                return redirect("/account/2fa")
            codes = await two_factor.enable(conn, self.gw.box, ctx.user_id, ctx.form.get("code", ""))
        if codes is None:
            return await self.render_setup(ctx, secret, status=400, error=ctx.t("two_factor.code_wrong"))
        assert ctx.user is not None
        ctx.user["two_factor"] = True
        return self.render_codes(ctx, codes, first=True)

    def render_codes(self, ctx: Ctx, codes: list[str], *, first: bool) -> web.Response:
        return self.render(ctx, "two_factor_codes.html", title=ctx.t("two_factor.codes_title"), codes=codes, first=first)

    @page("user")
    async def disable(self, ctx: Ctx) -> web.StreamResponse:
        if self.required(ctx):  # TOKENHUB_REQUIRE_ADMIN_2FA: an admin keeps it
            return await self.render_status(ctx, status=403, error=ctx.t("two_factor.cannot_turn_off"))
        error = await self.shell.confirm_step_up(ctx)
        if error:
            return await self.render_status(ctx, status=403, error=error)
        async with self.gw.engine.begin() as conn:
            await two_factor.disable(conn, ctx.user_id)
        return redirect("/account/2fa?done=2fa_off")

    @page("user")
    async def regenerate(self, ctx: Ctx) -> web.StreamResponse:
        async with self.gw.engine.connect() as conn:
            enabled = await two_factor.is_enabled(conn, ctx.user_id)
        if not enabled:
            return redirect("/account/2fa")
        error = await self.shell.confirm_step_up(ctx)
        if error:
            return await self.render_status(ctx, status=403, error=error)
        async with self.gw.engine.begin() as conn:
            codes = await two_factor.regenerate_codes(conn, ctx.user_id)
        return self.render_codes(ctx, codes, first=False)

    # -- the second step of signing in -------------------------------------------------------------

    @page("guest")
    async def second_step(self, ctx: Ctx) -> web.StreamResponse:
        """Asks for a code or a recovery code after the password (or a sign-in provider) when 2FA is on. The
        pending sign-in gives access to this page only; wrong codes count like failed logins."""
        pending = self.shell.pending_sign_in(ctx)
        row = None
        if pending is not None:
            async with self.gw.engine.connect() as conn:
                try:
                    row = await accounts.get_user(conn, pending[0])
                except NotFound:
                    row = None
        if pending is None or row is None or row.disabled or row.session_epoch != pending[1] or row.totp_enabled_at is None:
            response = self.render(
                ctx,
                "error.html",
                status=400,
                title=ctx.t("two_factor.login_title"),
                message=ctx.t("two_factor.pending_expired"),
            )
            response.del_cookie(PENDING_COOKIE, path="/login/2fa")
            return response
        title = ctx.t("two_factor.login_title")
        if ctx.request.method != "POST":
            return self.render(ctx, "two_factor_login.html", title=title, error=None)
        retry = self.shell.limiter.retry_after(row.email, ctx.address)
        if retry:
            minutes = max(1, (retry + 59) // 60)
            response = self.render(
                ctx, "error.html", status=429, title=ctx.t("error.status_429"), message=ctx.t("login.too_many", minutes=minutes)
            )
            response.headers["Retry-After"] = str(retry)
            return response
        delay = self.shell.limiter.delay(row.email)
        if delay:
            await asyncio.sleep(delay)
        async with self.gw.engine.begin() as conn:
            accepted = await two_factor.verify(conn, self.gw.box, row.id, ctx.form.get("code", ""))
        if not accepted:
            self.shell.limiter.fail(row.email, ctx.address)
            return self.render(ctx, "two_factor_login.html", status=400, title=title, error=ctx.t("two_factor.code_wrong"))
        self.shell.limiter.succeed(row.email, ctx.address)
        await self.shell.sign_in(ctx, row.id, row.session_epoch)  # a new session id: the pending value no longer matches
        response = redirect(pending[2])
        response.del_cookie(PENDING_COOKIE, path="/login/2fa")
        return response
