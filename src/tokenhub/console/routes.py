"""The console's pages, served at ``/`` by the gateway's app (like PublicAPI: ``Console(app).routes()``).

Every handler is a method decorated with ``@page(...)``, which builds a ``Ctx`` (language, session,
signed-in user, CSRF token), checks CSRF on POST, enforces who may see the page, renders
``GatewayError``s as friendly pages, and sets the session cookie and security headers. Handlers
call the service layer (accounts, billing) — the same functions the CLI and admin API use.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from tokenhub.accounts import service as accounts
from tokenhub.accounts.secrets import hash_password, verify_password
from tokenhub.api.routes import GATEWAY
from tokenhub.billing import codes as codes_service
from tokenhub.billing import payments
from tokenhub.billing import service as billing
from tokenhub.console.i18n import DEFAULT_LANGUAGE, LANG_COOKIE, LANGUAGES, Translator, catalog, pick_language, translator
from tokenhub.console.ratelimit import LoginLimiter
from tokenhub.console.render import Templates
from tokenhub.console.sessions import COOKIE, Session, SessionCodec, is_https
from tokenhub.errors import GatewayError, InvalidRequest, NotFound, PermissionDenied
from tokenhub.gateway import Gateway
from tokenhub.money import MoneyError, format_usd, usd_to_nanos
from tokenhub.storage.engine import utc_now

# Notices shown after a redirect (``?done=...``): only these keys, never text from the URL.
NOTICES = {
    "revoked": "keys.notice_revoked",
    "batch_disabled": "codes.notice_disabled",
    "checkout_cancelled": "billing.notice_cancelled",
    "password": "password.notice_changed", "welcome": "dashboard.notice_welcome"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LEDGER_PAGE = 50
MAX_CODES_PER_BATCH = 1000  # per batch from the console (the service allows more, for the CLI)
_DUMMY_HASH = hash_password("not-a-real-password-0")  # unknown emails cost the same argon2 time


class CsrfFailed(Exception):
    pass


@dataclass
class Ctx:
    """What every page knows about the request it answers."""

    request: web.Request
    lang: str
    t: Translator
    session: Session
    user: dict[str, Any] | None
    csrf: str
    form: MultiDictProxy[str] = field(default_factory=lambda: MultiDictProxy(MultiDict()))
    new_session: Session | None = None  # set by login/logout/password change: sent as the cookie

    @property
    def address(self) -> str:
        return self.request.remote or "unknown"


Handler = Callable[[Any, Ctx], Awaitable[web.StreamResponse]]


def page(auth: str = "user") -> Callable[[Handler], Callable[[Any, web.Request], Awaitable[web.StreamResponse]]]:
    """``auth``: "user" (signed in), "admin", "guest" (signed-out pages: login, signup) or "any"."""

    def wrap(handler: Handler) -> Callable[[Any, web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def run(self: "Console", request: web.Request) -> web.StreamResponse:
            ctx = await self.context(request)
            try:
                if request.method == "POST":
                    ctx.form = await self.checked_form(ctx)
                if auth in ("user", "admin") and ctx.user is None:
                    response = redirect(f"/login?next={quote(request.path_qs, safe='')}")
                elif auth == "admin" and not ctx.user["is_admin"]:  # type: ignore[index]
                    raise PermissionDenied("admins only")
                elif auth == "guest" and ctx.user is not None:
                    response = redirect("/")
                else:
                    response = await handler(self, ctx)
            except CsrfFailed:
                response = self.render(ctx, "error.html", status=403, title=ctx.t("csrf.title"), message=ctx.t("csrf.message"))
            except GatewayError as err:
                response = self.render(
                    ctx, "error.html", status=err.status, title=ctx.t(f"error.status_{err.status}"), message=error_text(ctx.t, err)
                )
            return self.finish(ctx, response)

        return run

    return wrap


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def safe_next(value: str | None) -> str:
    """A local path to go back to after login; anything else (``//evil``, ``https://...``) is ``/``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/"


def error_text(t: Translator, err: GatewayError) -> str:
    """A service error in the page's language: ``error.code.<code>``, then ``error.param.<param>``, else its message."""
    known = _known_error_keys()
    for key in (f"error.code.{err.code}", f"error.param.{err.param}"):
        if key in known:
            return t(key, min=accounts.MIN_PASSWORD)
    return err.message


@functools.cache
def _known_error_keys() -> frozenset[str]:
    return frozenset(key for key in catalog(DEFAULT_LANGUAGE) if key.startswith("error."))


def usd(nanos: int | None) -> str:
    return "" if nanos is None else f"${format_usd(nanos)}"


class Console:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.templates = Templates()
        self.limiter = LoginLimiter()
        self._codec: SessionCodec | None = None

    @property
    def gw(self) -> Gateway:
        return self.app[GATEWAY]

    @property
    def codec(self) -> SessionCodec:
        if self._codec is None:  # the gateway (and its secret) exists only once the app has started
            box = self.gw.box
            self._codec = SessionCodec(box.derive_key("console-session"), box.derive_key("console-csrf"))
        return self._codec

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.dashboard),
            web.get("/signup", self.signup),
            web.post("/signup", self.signup),
            web.get("/login", self.login),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.get("/account/password", self.password),
            web.post("/account/password", self.password),
            web.get("/keys", self.keys),
            web.post("/keys", self.keys),
            web.post("/keys/{key_id}/revoke", self.revoke_key),
            web.get("/lang/{lang}", self.set_language),
            web.get("/models", self.models),
            web.get("/docs", self.docs),
            web.get("/admin", self.admin),
            web.get("/billing", self.billing_page),
            web.post("/billing/redeem", self.redeem_code),
            web.post("/billing/topup", self.top_up),
            web.get("/admin/codes", self.admin_codes),
            web.post("/admin/codes", self.admin_codes),
            web.post("/admin/codes/{batch_id}/disable", self.disable_batch),
        ]

    # -- the plumbing every page shares ----------------------------------------------------

    async def context(self, request: web.Request) -> Ctx:
        lang = pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language"))
        session = self.codec.loads(request.cookies.get(COOKIE))
        user = None
        if session is not None and session.user_id is not None:
            user = await self.load_user(session)
            if user is None:
                session = None  # signed out elsewhere (password changed), disabled, or deleted
        fresh = session is None
        if session is None:
            session = self.codec.new()
        ctx = Ctx(request, lang, translator(lang), session, user, self.codec.csrf_token(session))
        if fresh:
            ctx.new_session = session
        return ctx

    async def load_user(self, session: Session) -> dict[str, Any] | None:
        async with self.gw.engine.connect() as conn:
            try:
                row = await accounts.get_user(conn, int(session.user_id))  # type: ignore[arg-type]
            except NotFound:
                return None
        if row.disabled or row.session_epoch != session.epoch:
            return None
        return accounts.user_dict(row)

    async def checked_form(self, ctx: Ctx) -> MultiDictProxy[str]:
        """The POSTed form, if it comes from our own pages: same origin (when the browser says) and a valid token."""
        request = ctx.request
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            raise CsrfFailed()
        form = await request.post()
        if ctx.new_session is not None or not self.codec.csrf_valid(ctx.session, form.get("csrf")):  # type: ignore[arg-type]
            raise CsrfFailed()
        return form  # type: ignore[return-value]

    def render(self, ctx: Ctx, template: str, *, status: int = 200, **values: Any) -> web.Response:
        notice = NOTICES.get(ctx.request.query.get("done", ""))
        html = self.templates.render(
            template,
            t=ctx.t,
            lang=ctx.lang,
            languages=LANGUAGES,
            user=ctx.user,
            csrf=ctx.csrf,
            path=ctx.request.path,
            path_qs=ctx.request.path_qs,
            notice=ctx.t(notice) if notice else None,
            usd=usd,
            **values,
        )
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def finish(self, ctx: Ctx, response: web.StreamResponse) -> web.StreamResponse:
        if ctx.new_session is not None:
            self.codec.set_cookie(ctx.request, response, ctx.new_session)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Vary", "Cookie, Accept-Language")
        return response

    def sign_in(self, ctx: Ctx, user_id: int, epoch: int) -> None:
        ctx.new_session = self.codec.new(user_id, epoch)  # a new session id: no fixation

    # -- pages ------------------------------------------------------------------------------

    @page("user")
    async def dashboard(self, ctx: Ctx) -> web.StreamResponse:
        async with self.gw.engine.connect() as conn:
            summary = await billing.credits_summary(conn, ctx.user["id"])  # type: ignore[index]
        return self.render(ctx, "dashboard.html", title=ctx.t("dashboard.title"), summary=summary)

    @page("guest")
    async def signup(self, ctx: Ctx) -> web.StreamResponse:
        values = {"email": ""}
        if ctx.request.method == "POST":
            email, password = ctx.form.get("email", ""), ctx.form.get("password", "")
            values["email"] = email
            retry = self.limiter.addresses.retry_after(ctx.address)
            if retry:
                return self.too_many(ctx, retry)
            try:
                if password != ctx.form.get("confirm", ""):
                    raise InvalidRequest("the passwords differ", code="passwords_differ")
                async with self.gw.engine.begin() as conn:
                    user = await accounts.create_user(conn, email, password=password)
            except GatewayError as err:
                self.limiter.addresses.fail(ctx.address)  # signups count against the address too
                return self.render(ctx, "signup.html", status=400, title=ctx.t("signup.title"), error=error_text(ctx.t, err), **values)
            self.sign_in(ctx, user["id"], 0)
            return redirect("/?done=welcome")
        return self.render(ctx, "signup.html", title=ctx.t("signup.title"), error=None, **values)

    @page("guest")
    async def login(self, ctx: Ctx) -> web.StreamResponse:
        next_path = safe_next(ctx.request.query.get("next") or ctx.form.get("next"))
        values = {"email": "", "next": next_path}
        if ctx.request.method != "POST":
            return self.render(ctx, "login.html", title=ctx.t("login.title"), error=None, **values)
        email = ctx.form.get("email", "").strip().lower()
        password = ctx.form.get("password", "")
        values["email"] = email
        retry = self.limiter.retry_after(email, ctx.address)
        if retry:
            return self.too_many(ctx, retry)
        row = None
        async with self.gw.engine.connect() as conn:
            try:
                row = await accounts.get_user(conn, email) if email and not email.isdigit() else None
            except NotFound:
                row = None
        stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
        valid = await asyncio.to_thread(verify_password, stored, password)
        if row is None or not row.password_hash or not valid:
            self.limiter.fail(email, ctx.address)
            return self.render(ctx, "login.html", status=400, title=ctx.t("login.title"), error=ctx.t("login.failed"), **values)
        if row.disabled:
            return self.render(ctx, "login.html", status=403, title=ctx.t("login.title"), error=ctx.t("login.disabled"), **values)
        self.limiter.succeed(email)
        self.sign_in(ctx, row.id, row.session_epoch)
        return redirect(next_path)

    def too_many(self, ctx: Ctx, retry_after: int) -> web.Response:
        minutes = max(1, (retry_after + 59) // 60)
        response = self.render(
            ctx, "error.html", status=429, title=ctx.t("error.status_429"), message=ctx.t("login.too_many", minutes=minutes)
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    @page("any")
    async def logout(self, ctx: Ctx) -> web.StreamResponse:
        ctx.new_session = self.codec.new()
        return redirect("/login")

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
        if not await asyncio.to_thread(verify_password, row.password_hash or _DUMMY_HASH, ctx.form.get("current", "")):
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
        self.sign_in(ctx, user["id"], epoch)  # this browser stays signed in; every other session ends
        return redirect("/?done=password")

    @page("user")
    async def keys(self, ctx: Ctx) -> web.StreamResponse:
        user_id = ctx.user["id"]  # type: ignore[index]
        created, error, status = None, None, 200
        form = {"name": "", "limit": "", "models": "", "expires": ""}
        if ctx.request.method == "POST":
            form = {name: ctx.form.get(name, "").strip() for name in form}
            try:
                limit = parse_limit(form["limit"])
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
        now = utc_now()
        for key in rows:
            key["status"] = "revoked" if key["revoked_at"] else "expired" if key["expires_at"] and key["expires_at"] <= now else "active"
            # expires_at is the midnight after the last day the key works (accounts.parse_expiry): show that day
            key["expires_on"] = (key["expires_at"] - timedelta(seconds=1)).date().isoformat() if key["expires_at"] else None
        return self.render(
            ctx, "keys.html", status=status, title=ctx.t("keys.title"), keys=rows, created=created, error=error, form=form
        )

    @page("user")
    async def revoke_key(self, ctx: Ctx) -> web.StreamResponse:
        key_id = ctx.request.match_info["key_id"]
        async with self.gw.engine.begin() as conn:
            try:
                key = await accounts.get_key(conn, key_id)
            except InvalidRequest:
                raise NotFound("no such key") from None
            if key["user_id"] != ctx.user["id"]:  # type: ignore[index]
                raise NotFound("no such key")  # another account's key: as if it did not exist
            await accounts.revoke_key(conn, key["id"])
        await self.gw.directory.refresh_if_changed()
        return redirect("/keys?done=revoked")

    @page("any")
    async def set_language(self, ctx: Ctx) -> web.StreamResponse:
        lang = ctx.request.match_info["lang"]
        if lang not in LANGUAGES:
            raise NotFound("no such language")
        response = redirect(safe_next(ctx.request.query.get("next")))
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, path="/", samesite="Lax")
        return response

    @page("user")
    async def models(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.models"))

    @page("user")
    async def docs(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.docs"))

    @page("admin")
    async def admin(self, ctx: Ctx) -> web.StreamResponse:
        return self.render(ctx, "placeholder.html", title=ctx.t("nav.admin"))

    # -- billing ----------------------------------------------------------------------------

    @property
    def settings(self) -> Any:
        return self.gw.settings

    @page("user")
    async def billing_page(self, ctx: Ctx) -> web.StreamResponse:
        return await self.render_billing(ctx)

    async def render_billing(self, ctx: Ctx, *, status: int = 200, **values: Any) -> web.Response:
        user_id = ctx.user["id"]  # type: ignore[index]
        query = ctx.request.query
        before = query.get("before", "")
        before_id = int(before) if before.isdigit() else None
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
                amount = await codes_service.redeem(conn, ctx.user["id"], ctx.form.get("code", ""))  # type: ignore[index]
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
                ctx.user["id"],  # type: ignore[index]
                amount,
                f"{base}/billing?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
                f"{base}/billing?done=checkout_cancelled",
            )
        except InvalidRequest:
            return await self.render_billing(
                ctx, status=400, topup_amount=text, topup_error=ctx.t("billing.topup_invalid", min=format_usd(payments.MIN_TOPUP_NANOS), max=format_usd(payments.MAX_TOPUP_NANOS))
            )
        except GatewayError as err:
            return await self.render_billing(ctx, status=err.status, topup_amount=text, topup_error=ctx.t("billing.topup_failed"))
        return web.Response(status=303, headers={"Location": str(checkout["url"])})

    # -- redemption codes (admin) -----------------------------------------------------------

    @page("admin")
    async def admin_codes(self, ctx: Ctx) -> web.StreamResponse:
        created, error, status = None, None, 200
        form = {"amount": "", "count": "", "expires": "", "label": ""}
        if ctx.request.method == "POST":
            form = {name: ctx.form.get(name, "").strip() for name in form}
            try:
                amount = parse_usd(form["amount"], "amount")
                count = parse_count(form["count"])
                expires_at = parse_expiry_date(form["expires"])
                async with self.gw.engine.begin() as conn:
                    batch = await codes_service.create_batch(
                        conn, amount, count, expires_at=expires_at, label=form["label"] or None, created_by=ctx.user["id"]  # type: ignore[index]
                    )
                created = {
                    "batch_id": batch.batch_id,
                    "codes": list(batch),
                    "amount": usd(amount),
                    "csv": "data:text/csv;charset=utf-8," + quote(codes_csv(list(batch), amount, batch.batch_id)),
                }
                form = {name: "" for name in form}
            except GatewayError as err:
                error, status = error_text(ctx.t, err), 400
        selected = ctx.request.query.get("batch", "")[:64]
        selected_codes = None
        async with self.gw.engine.connect() as conn:
            batches = await codes_service.list_batches(conn)
            if selected:
                try:
                    selected_codes = await codes_service.list_codes(conn, selected)
                except NotFound:
                    selected, selected_codes = "", None
        for batch in batches:
            batch["expires_on"] = (batch["expires_at"] - timedelta(seconds=1)).date().isoformat() if batch["expires_at"] else None
            batch["link"] = "/admin/codes?" + urlencode({"batch": batch["batch_id"]})
        return self.render(
            ctx, "codes.html", status=status, title=ctx.t("codes.title"), batches=batches, created=created, error=error,
            form=form, selected=selected, selected_codes=selected_codes, max_count=MAX_CODES_PER_BATCH,
        )

    @page("admin")
    async def disable_batch(self, ctx: Ctx) -> web.StreamResponse:
        batch_id = ctx.request.match_info["batch_id"]
        async with self.gw.engine.begin() as conn:
            await codes_service.list_codes(conn, batch_id)  # NotFound for an unknown batch
            await codes_service.disable_codes(conn, batch_id=batch_id)
        return redirect("/admin/codes?" + urlencode({"batch": batch_id, "done": "batch_disabled"}))


def parse_usd(text: str, param: str) -> int:
    try:
        return usd_to_nanos(text.strip().lstrip("$").strip())
    except MoneyError:
        raise InvalidRequest(f"'{text}' is not a USD amount", param=param) from None


def parse_count(text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_CODES_PER_BATCH:
        raise InvalidRequest(f"the count must be between 1 and {MAX_CODES_PER_BATCH}", param="count")
    return count


def parse_expiry_date(text: str) -> datetime | None:
    """A date picked in the form: the code works through that whole day (UTC), so it expires the midnight after."""
    if not text:
        return None
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidRequest(f"'{text}' is not a date", param="expires_at") from None
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)


def codes_csv(codes: list[str], amount_nanos: int, batch_id: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "amount_usd", "batch_id"])
    for code in codes:
        writer.writerow([code, format_usd(amount_nanos), batch_id])
    return out.getvalue()


def parse_limit(text: str) -> int | None:
    if not text:
        return None
    try:
        return usd_to_nanos(text.lstrip("$"))
    except MoneyError:
        raise InvalidRequest(f"'{text}' is not a USD amount", param="limit") from None
