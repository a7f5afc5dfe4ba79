"""Signing up, in and out, changing the password, and the language switch."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tokenhub.accounts import links
from tokenhub.accounts import service as accounts
from tokenhub.accounts.secrets import verify_password
from tokenhub.accounts.sessions import end_all_sessions, end_session
from tokenhub.console.core import Ctx, Pages, error_text, page, redirect, safe_next
from tokenhub.console.i18n import LANG_COOKIE, LANGUAGES
from tokenhub.console.pages.recovery import after_sign_up
from tokenhub.errors import GatewayError, InvalidRequest, NotFound


class AccountPages(Pages):
    NOTICES = {
        "password": "password.notice_changed",
        "welcome": "dashboard.notice_welcome",
        "signed_out_everywhere": "sessions.notice_everywhere",
    }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/signup", self.signup),
            web.post("/signup", self.signup),
            web.get("/login", self.login),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.post("/logout/everywhere", self.logout_everywhere),
            web.get("/account/password", self.password),
            web.post("/account/password", self.password),
            web.get("/lang/{lang}", self.set_language),
        ]

    @property
    def limiter(self):  # type: ignore[no-untyped-def]
        return self.shell.limiter

    @page("guest")
    async def signup(self, ctx: Ctx) -> web.StreamResponse:
        """The sign-up form, as ``TOKENHUB_SIGNUP`` allows: open, by an invite link (``?invite=``), or closed."""
        settings = self.gw.settings
        invite = (ctx.form.get("invite") if ctx.request.method == "POST" else ctx.request.query.get("invite")) or ""
        values = {"email": "", "invite": invite}
        if settings.signup == "closed":
            return self.signup_refused(ctx, "signup.closed")
        if settings.signup == "invite":
            async with self.gw.engine.connect() as conn:
                if not invite or await links.peek_link(conn, "invite", invite) is None:
                    return self.signup_refused(ctx, "signup.invite_only" if not invite else "signup.invite_invalid")
        if ctx.request.method != "POST":
            return self.render(ctx, "signup.html", title=ctx.t("signup.title"), error=None, **values)
        email, password = ctx.form.get("email", ""), ctx.form.get("password", "")
        values["email"] = email
        retry = max(self.shell.signups.retry_after(ctx.address), self.limiter.addresses.retry_after(ctx.address))
        if retry:
            return self.too_many(ctx, retry)
        self.shell.signups.fail(ctx.address)  # every attempt counts: at most SignupLimiter.limit an hour per address
        try:
            if password != ctx.form.get("confirm", ""):
                raise InvalidRequest("the passwords differ", code="passwords_differ")
            async with self.gw.engine.begin() as conn:
                user = await self.shell.open_account(conn, email, password=password, invite=invite or None)
        except GatewayError as err:
            self.limiter.addresses.fail(ctx.address)  # signups count against the address too
            return self.render(ctx, "signup.html", status=400, title=ctx.t("signup.title"), error=error_text(ctx.t, err), **values)
        await self.shell.sign_in(ctx, user["id"], 0)
        await after_sign_up(self.shell, ctx, user)  # the verification email (TOKENHUB_SIGNUP_VERIFY), in the background
        return redirect("/?done=welcome")

    def signup_refused(self, ctx: Ctx, message_key: str) -> web.Response:
        return self.render(ctx, "error.html", status=403, title=ctx.t("signup.title"), message=ctx.t(message_key))

    @page("guest")
    async def login(self, ctx: Ctx) -> web.StreamResponse:
        next_path = safe_next(ctx.request.query.get("next") or ctx.form.get("next"))
        values = {"email": "", "next": next_path}
        if ctx.request.method != "POST":
            return self.render(ctx, "login.html", title=ctx.t("login.title"), error=None, **values)
        email = ctx.form.get("email", "").strip().lower()
        password = ctx.form.get("password", "")
        values["email"] = email
        address = ctx.address
        retry = self.limiter.retry_after(email, address)
        if retry:
            return self.too_many(ctx, retry)
        delay = self.limiter.delay(email)
        if delay:  # many failures on this account from elsewhere: slower, but the right password still works
            await asyncio.sleep(delay)
        row = None
        async with self.gw.engine.connect() as conn:
            try:
                row = await accounts.get_user(conn, email) if email and not email.isdigit() else None
            except NotFound:
                row = None
        stored = row.password_hash if row is not None and row.password_hash else None
        valid = await asyncio.to_thread(verify_password, stored, password)
        if row is None or not row.password_hash or not valid:
            self.limiter.fail(email, address)
            return self.render(ctx, "login.html", status=400, title=ctx.t("login.title"), error=ctx.t("login.failed"), **values)
        if row.disabled:
            return self.render(ctx, "login.html", status=403, title=ctx.t("login.title"), error=ctx.t("login.disabled"), **values)
        self.limiter.succeed(email, address)
        return await self.shell.enter(ctx, row, next_path)

    def too_many(self, ctx: Ctx, retry_after: int) -> web.Response:
        minutes = max(1, (retry_after + 59) // 60)
        response = self.render(
            ctx, "error.html", status=429, title=ctx.t("error.status_429"), message=ctx.t("login.too_many", minutes=minutes)
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    @page("any")
    async def logout(self, ctx: Ctx) -> web.StreamResponse:
        """Ends this session on the server too: a copy of the cookie signs nobody in afterwards."""
        if ctx.user is not None:
            async with self.gw.engine.begin() as conn:
                await end_session(conn, ctx.session)
        ctx.new_session = self.shell.codec.new()
        return redirect("/login")

    @page("user")
    async def logout_everywhere(self, ctx: Ctx) -> web.StreamResponse:
        """Ends every session of this account, this one included, in every browser."""
        async with self.gw.engine.begin() as conn:
            await end_all_sessions(conn, ctx.user_id)
        ctx.new_session = self.shell.codec.new()
        return redirect("/login?done=signed_out_everywhere")

    @page("user")
    async def password(self, ctx: Ctx) -> web.StreamResponse:
        title = ctx.t("password.title")
        if ctx.request.method != "POST":
            return self.render(ctx, "password.html", title=title, error=None)
        user = ctx.user
        assert user is not None
        retry = self.limiter.retry_after(user["email"], ctx.address)
        if retry:
            return self.too_many(ctx, retry)
        async with self.gw.engine.connect() as conn:
            row = await accounts.get_user(conn, user["id"])
        if not await asyncio.to_thread(verify_password, row.password_hash, ctx.form.get("current", "")):
            self.limiter.fail(user["email"], ctx.address)
            return self.render(ctx, "password.html", status=400, title=title, error=ctx.t("password.wrong_current"))
        new = ctx.form.get("password", "")
        try:
            if new != ctx.form.get("confirm", ""):
                raise InvalidRequest("the passwords differ", code="passwords_differ")
            async with self.gw.engine.begin() as conn:
                epoch = await accounts.set_password(conn, user["id"], new)
        except GatewayError as err:
            return self.render(ctx, "password.html", status=400, title=title, error=error_text(ctx.t, err))
        await self.shell.sign_in(ctx, user["id"], epoch, end_others=True)  # this browser stays signed in; every other ends
        return redirect("/?done=password")

    @page("any")
    async def set_language(self, ctx: Ctx) -> web.StreamResponse:
        lang = ctx.request.match_info["lang"]
        if lang not in LANGUAGES:
            raise NotFound("no such language")
        response = redirect(safe_next(ctx.request.query.get("next")))
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, path="/", samesite="Lax")
        return response
