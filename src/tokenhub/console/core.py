"""What every console page shares: the request context, the ``@page`` decorator and the ``Pages`` base.

A page group is a ``Pages`` subclass in ``console/pages/`` that lists its routes and defines handlers
decorated with ``@page(...)``. The decorator builds a ``Ctx`` (language, session, signed-in user,
CSRF token), checks CSRF on POST, enforces who may see the page, renders ``GatewayError``s as
friendly pages, and sets the session cookie and security headers. Handlers call the service layer
(accounts, billing, channels, catalog) — the same functions the CLI and admin API use.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar
from urllib.parse import quote, urlsplit

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer
from multidict import MultiDict, MultiDictProxy

from tokenhub.accounts import links, two_factor
from tokenhub.accounts import service as accounts
from tokenhub.accounts.secrets import verify_password
from tokenhub.accounts.sessions import COOKIE, Session, SessionCodec, end_all_sessions, is_https, open_session, session_is_open
from tokenhub.billing import service as billing
from tokenhub.console.addresses import client_address
from tokenhub.console.i18n import DEFAULT_LANGUAGE, LANG_COOKIE, LANGUAGES, Translator, catalog, pick_language, translator
from tokenhub.console.ratelimit import LoginLimiter, SignupLimiter
from tokenhub.console.render import Templates
from tokenhub.errors import GatewayError, NotFound, PermissionDenied
from tokenhub.gateway import Gateway
from tokenhub.money import format_usd
from tokenhub.storage import AsyncConnection
from tokenhub.surface import GATEWAY

if TYPE_CHECKING:
    from tokenhub.console.pages.recovery import Mailer

Hook = Callable[[web.Application], Awaitable[None]]

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


PENDING_COOKIE = "th_2fa"  # a sign-in waiting for its second factor (Shell.enter)
PENDING_MAX_AGE = 5 * 60


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
        """The client's address: the peer, or what a trusted proxy says (TOKENHUB_TRUSTED_PROXIES)."""
        return client_address(self.request, self.request.config_dict[GATEWAY].settings.trusted_proxies)

    @property
    def user_id(self) -> int:
        assert self.user is not None
        return int(self.user["id"])


Handler = Callable[[Any, Ctx], Awaitable[web.StreamResponse]]


def page(auth: str = "user") -> Callable[[Handler], Callable[[Any, web.Request], Awaitable[web.StreamResponse]]]:
    """``auth``: "user" (signed in), "admin", "guest" (signed-out pages: login, signup) or "any"."""

    def wrap(handler: Handler) -> Callable[[Any, web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def run(self: "Pages", request: web.Request) -> web.StreamResponse:
            shell = self.shell
            ctx = await shell.context(request)
            try:
                if request.method == "POST":
                    ctx.form = await shell.checked_form(ctx)
                if auth in ("user", "admin") and ctx.user is None:
                    response: web.StreamResponse = redirect(f"/login?next={quote(request.path_qs, safe='')}")
                elif shell.must_set_up_two_factor(ctx):  # TOKENHUB_REQUIRE_ADMIN_2FA: nothing else until 2FA is on
                    response = redirect("/account/2fa")
                elif auth == "admin" and not ctx.user["is_admin"]:  # type: ignore[index]
                    raise PermissionDenied("admins only")
                elif auth == "guest" and ctx.user is not None:
                    response = redirect("/")
                else:
                    response = await handler(self, ctx)
            except CsrfFailed:
                response = shell.render(ctx, "error.html", status=403, title=ctx.t("csrf.title"), message=ctx.t("csrf.message"))
            except GatewayError as err:
                response = shell.render(
                    ctx, "error.html", status=err.status, title=ctx.t(f"error.status_{err.status}"), message=error_text(ctx.t, err)
                )
            return shell.finish(ctx, response)

        return run

    return wrap


def site_url(request: web.Request) -> str:
    """The console's address for what leaves the browser — links in emails and invites, a sign-in provider's
    redirect URI, the API base in examples: ``TOKENHUB_PUBLIC_URL``, else the scheme (``X-Forwarded-Proto``
    behind a proxy) and host this request came to."""
    public = request.config_dict[GATEWAY].settings.public_url
    if public:
        return str(public)
    return f"{'https' if is_https(request) else 'http'}://{request.host}"


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def safe_next(value: str | None) -> str:
    """A local path to go back to after login; anything else (``//evil``, ``https://...``, control characters
    such as CR/LF, which no header may carry) is ``/``. Other characters outside ASCII are percent-encoded."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return quote(value, safe="/?&=%#:@!$'()*+,;~-._[]")


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


class Shell:
    """The console's shared machinery: templates, session codec, login limiter, notices."""

    def __init__(self, app: web.Application, notices: dict[str, str]) -> None:
        self.app = app
        self.templates = Templates()
        self.limiter = LoginLimiter()
        self.signups = SignupLimiter()
        self.notices = notices
        self._codec: SessionCodec | None = None
        self.mailer: Mailer | None = None  # the recovery pages' (verification and reset emails)
        # What the pages need done when the app shuts down and cleans up. The console is built on its
        # first request, after the app started (app.py), so its pages cannot add to the app's own signals.
        self.on_shutdown: list[Hook] = []
        self.on_cleanup: list[Hook] = []

    @property
    def gw(self) -> Gateway:
        return self.app[GATEWAY]

    @property
    def codec(self) -> SessionCodec:
        if self._codec is None:  # the gateway (and its secret) exists only once the app has started
            box = self.gw.box
            self._codec = SessionCodec(box.derive_key("console-session"), box.derive_key("console-csrf"))
        return self._codec

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
            if row.disabled or row.session_epoch != session.epoch or not await session_is_open(conn, session):
                return None  # disabled, password changed, logged out, or signed out everywhere
        user = accounts.user_dict(row)
        user["has_password"] = row.password_hash is not None  # console only: which step-up fields to offer
        return user

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
        notice = self.notices.get(ctx.request.query.get("done", ""))
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

    async def open_account(
        self, conn: AsyncConnection, email: str, *, password: str | None = None, email_verified: bool = False,
        invite: str | None = None,
    ) -> dict[str, Any]:
        """A new account from the console — the sign-up form or a sign-in provider's new identity — in the caller's
        transaction: refused when ``TOKENHUB_SIGNUP=closed``; with ``invite``, spends that single-use invite (and
        is refused without a valid one); credits ``TOKENHUB_SIGNUP_BONUS`` as a ledger entry. An error rolls the
        whole transaction back: no account, no spent invite, no bonus."""
        settings = self.gw.settings
        if settings.signup == "closed":
            raise PermissionDenied("sign-up is closed on this server", code="signup_closed")
        verified = email_verified or settings.signup_verify == "off"
        user = await accounts.create_user(conn, email, password=password, email_verified=verified)
        if settings.signup == "invite" and (not invite or await links.use_link(conn, "invite", invite, used_by=user["id"]) is None):
            raise PermissionDenied("sign-up is by invitation: this invite link is not valid", code="invite_invalid")
        if settings.signup_bonus_nanos:
            await billing.add_credits(conn, user["id"], settings.signup_bonus_nanos, kind="bonus", note="sign-up bonus")
        return user

    async def enter(self, ctx: Ctx, user: Any, next_path: str) -> web.Response:
        """The last step of every way in (a password, a sign-in provider): ``user`` is the account's row, already
        checked (not disabled). Signs in and goes to ``next_path`` — unless the account has two-factor sign-in on:
        then this browser stays signed out, holding only a pending sign-in (a signed cookie, bound to this
        anonymous session, the account and its session epoch, for ``PENDING_MAX_AGE`` seconds) that
        ``/login/2fa`` turns into a session once a code is given."""
        async with self.gw.engine.connect() as conn:
            row = await accounts.get_user(conn, int(user.id))  # as stored now, whatever the caller read
        if row.totp_enabled_at is not None:
            response = redirect("/login/2fa")
            value = self.pending_codec.dumps([ctx.session.sid, row.id, row.session_epoch, next_path])
            response.set_cookie(
                PENDING_COOKIE, value, max_age=PENDING_MAX_AGE, path="/login/2fa", httponly=True, samesite="Lax",
                secure=is_https(ctx.request),
            )
            return response
        await self.sign_in(ctx, row.id, row.session_epoch)
        return redirect(next_path)

    @property
    def pending_codec(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            self.gw.box.derive_key("console-2fa-pending"), salt="tokenhub.console.2fa", signer_kwargs={"digest_method": hashlib.sha256}
        )

    def pending_sign_in(self, ctx: Ctx) -> tuple[int, int, str] | None:
        """The pending sign-in ``enter`` left in this browser: (user id, session epoch, next path), or None when
        there is none, it is older than ``PENDING_MAX_AGE``, forged, or from another (anonymous) session."""
        if ctx.user is not None or ctx.new_session is not None:
            return None
        try:
            sid, user_id, epoch, next_path = self.pending_codec.loads(
                ctx.request.cookies.get(PENDING_COOKIE, ""), max_age=PENDING_MAX_AGE
            )
        except (BadSignature, ValueError, TypeError):
            return None
        if sid != ctx.session.sid or not isinstance(user_id, int) or not isinstance(epoch, int) or not isinstance(next_path, str):
            return None
        return user_id, epoch, safe_next(next_path)

    def must_set_up_two_factor(self, ctx: Ctx) -> bool:
        """An admin without 2FA under ``TOKENHUB_REQUIRE_ADMIN_2FA``, on a page other than the 2FA setup, logout
        and the language switch."""
        user = ctx.user
        if user is None or not user["is_admin"] or user["two_factor"] or not self.gw.settings.require_admin_2fa:
            return False
        path = ctx.request.path
        return not (path == "/account/2fa" or path.startswith("/account/2fa/") or path == "/logout" or path.startswith("/lang/"))

    async def confirm_step_up(self, ctx: Ctx) -> str | None:
        """Step-up for a sensitive action: the form's ``confirm_password`` (the account's password) or
        ``confirm_code`` (a current two-factor code, used up like at sign-in). None when confirmed; otherwise the
        error to show (and the caller changes nothing). Failures count like failed logins."""
        user = ctx.user
        assert user is not None
        password = ctx.form.get("confirm_password", "")
        code = ctx.form.get("confirm_code", "").strip()
        async with self.gw.engine.connect() as conn:
            row = await accounts.get_user(conn, int(user["id"]))
        if row.password_hash is None and row.totp_enabled_at is None:
            return ctx.t("two_factor.step_up_needs_2fa")
        retry = self.limiter.retry_after(row.email, ctx.address)
        if retry:
            return ctx.t("login.too_many", minutes=max(1, (retry + 59) // 60))
        if password and row.password_hash and await asyncio.to_thread(verify_password, row.password_hash, password):
            return None
        if code and row.totp_enabled_at is not None:
            async with self.gw.engine.begin() as conn:
                if await two_factor.verify(conn, self.gw.box, row.id, code):
                    return None
        if password or code:
            self.limiter.fail(row.email, ctx.address)
            return ctx.t("two_factor.step_up_wrong")
        return ctx.t("two_factor.step_up_missing")

    async def sign_in(self, ctx: Ctx, user_id: int, epoch: int, *, end_others: bool = False) -> None:
        """A new signed-in session (a new id: no fixation), recorded server-side; ``end_others`` first ends
        every other session of the account (a password change)."""
        session = self.codec.new(user_id, epoch)
        async with self.gw.engine.begin() as conn:
            if end_others:
                await end_all_sessions(conn, user_id)
            await open_session(conn, session)
        ctx.new_session = session


class Pages:
    """A group of console pages: ``routes()`` lists them; ``NOTICES`` are the ``?done=`` keys they redirect with."""

    NOTICES: ClassVar[dict[str, str]] = {}  # done-key -> catalog key; only these, never text from the URL

    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    @property
    def gw(self) -> Gateway:
        return self.shell.gw

    def render(self, ctx: Ctx, template: str, *, status: int = 200, **values: Any) -> web.Response:
        return self.shell.render(ctx, template, status=status, **values)

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError
