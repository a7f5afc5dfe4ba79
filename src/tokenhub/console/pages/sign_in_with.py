"""Sign in with GitHub, Google or any OpenID Connect provider: ``/auth/<name>`` and its callback.

``GET /auth/<name>`` starts: a single-use ``state`` (an ``account_links`` row of purpose "signin", ten
minutes), a ``nonce`` and a PKCE verifier, kept in a short-lived encrypted cookie bound to that state, and
the browser goes to the provider. ``GET /auth/<name>/callback`` finishes: the cookie must match the state,
the state is spent (a replayed callback is refused), the code is redeemed and the identity verified
(accounts/sign_in_providers.py). Then, in one transaction:

- an identity seen before signs into its account;
- a new identity whose email the provider has verified, and which matches an account, is linked to it
  (an unverified email never links: the user is told to sign in with the password and link it);
- a new identity with a new email opens an account (``Shell.open_account``: refused when sign-up is closed,
  and by invitation only with the invite link the flow was started from).

A disabled account is refused; every way in ends with ``Shell.enter``.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
from typing import Any

from aiohttp import web
from cryptography.fernet import Fernet, InvalidToken

from tokenhub.accounts import links
from tokenhub.accounts import service as accounts
from tokenhub.accounts import sign_in_providers as sso
from tokenhub.accounts.sessions import is_https
from tokenhub.config import OidcProvider
from tokenhub.console.core import Ctx, Pages, Shell, page, redirect, safe_next, site_url
from tokenhub.console.pages.recovery import after_sign_up
from tokenhub.console.ratelimit import FailureWindow
from tokenhub.errors import GatewayError, NotFound, PermissionDenied

log = logging.getLogger(__name__)

COOKIE = "th_sign_in"
COOKIE_PATH = "/auth/"
STARTS_PER_ADDRESS, STARTS_WINDOW = 30, 15 * 60  # sign-in round trips one client address may start
LIFETIME = 600  # seconds: the round trip through the provider, like the "signin" link's lifetime
LABELS = {"github": "GitHub", "gitlab": "GitLab", "google": "Google", "microsoft": "Microsoft", "okta": "Okta", "auth0": "Auth0"}
STATUS = {"denied": 400, "expired": 400, "rejected": 400, "bad_token": 400, "provider_error": 502, "unreachable": 502}


def label(provider: OidcProvider) -> str:
    """The name shown on the button: "Google", "GitHub", else the configured name, capitalised."""
    return LABELS.get(provider.name, provider.name.replace("-", " ").replace("_", " ").title())


class Refused(Exception):
    """The provider vouched for someone, but this console will not let them in: ``key`` says why."""

    def __init__(self, key: str, status: int = 403) -> None:
        super().__init__(key)
        self.key = key
        self.status = status


class SignInWithPages(Pages):
    def __init__(self, shell: Shell) -> None:
        super().__init__(shell)
        self._clients: sso.SignInProviders | None = None
        self._fernet: Fernet | None = None
        self.starts = FailureWindow(STARTS_PER_ADDRESS, STARTS_WINDOW)  # each start stores a state row: capped
        shell.templates.globals["sign_in_buttons"] = self.buttons
        shell.on_cleanup.append(self._close)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/auth/{name}", self.start),
            web.get("/auth/{name}/callback", self.callback),
            web.get("/account/sign-in", self.identities),
        ]

    @property
    def clients(self) -> sso.SignInProviders:
        if self._clients is None:
            settings = self.gw.settings
            self._clients = sso.SignInProviders(
                settings.sign_in_providers, github_url=settings.github_url, github_api_url=settings.github_api_url
            )
        return self._clients

    async def _close(self, _app: web.Application) -> None:
        if self._clients is not None:
            await self._clients.close()

    def buttons(self) -> list[tuple[str, str]]:
        """(name, label) of each configured provider, for the login and sign-up pages."""
        return [(provider.name, label(provider)) for provider in self.gw.settings.sign_in_providers]

    def provider(self, ctx: Ctx) -> OidcProvider:
        found = self.clients.get(ctx.request.match_info["name"])
        if found is None:
            raise NotFound("no such sign-in provider")
        return found

    def redirect_uri(self, ctx: Ctx, provider: OidcProvider) -> str:
        return f"{site_url(ctx.request)}/auth/{provider.name}/callback"

    # -- the round trip ------------------------------------------------------------------------------

    @page("any")
    async def start(self, ctx: Ctx) -> web.StreamResponse:
        provider = self.provider(ctx)
        if ctx.user is not None:
            return redirect("/")
        query = ctx.request.query
        invite = query.get("invite", "")[:200]
        retry = self.starts.retry_after(ctx.address)
        if retry:
            response = self.render(ctx, "error.html", status=429, title=ctx.t("error.status_429"), message=ctx.t("login.too_many", minutes=max(1, (retry + 59) // 60)))
            response.headers["Retry-After"] = str(retry)
            return response
        self.starts.fail(ctx.address)
        async with self.gw.engine.begin() as conn:
            state = await links.create_link(conn, "signin", note=provider.name)
        nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        try:
            url = await self.clients.authorize_url(
                provider, self.redirect_uri(ctx, provider), state=state, nonce=nonce, verifier=verifier
            )
        except sso.SignInError as err:
            return self.failed(ctx, provider, err.code, str(err))
        sealed = {"p": provider.name, "s": state, "n": nonce, "v": verifier, "i": invite, "x": safe_next(query.get("next"))}
        response = redirect(url)
        response.set_cookie(
            COOKIE,
            self.seal(sealed),
            max_age=LIFETIME,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Lax",
            secure=is_https(ctx.request),
        )
        return response

    @page("any")
    async def callback(self, ctx: Ctx) -> web.StreamResponse:
        provider = self.provider(ctx)
        response = await self.finish(ctx, provider)
        response.del_cookie(COOKIE, path=COOKIE_PATH)
        return response

    async def finish(self, ctx: Ctx, provider: OidcProvider) -> web.StreamResponse:
        query = ctx.request.query
        sealed = self.unseal(ctx.request.cookies.get(COOKIE))
        state = query.get("state", "")
        bound = sealed is not None and sealed.get("p") == provider.name and hmac.compare_digest(str(sealed.get("s", "")), state)
        if bound:
            async with self.gw.engine.begin() as conn:
                bound = await links.use_link(conn, "signin", state) is not None  # single use: a replay is refused
        if "error" in query:  # the provider's own answer: the user said no, or it could not serve the request
            code = "denied" if query.get("error") == "access_denied" else "provider_error"
            shown = "".join(char for char in query.get("error", "")[:64] if char.isalnum() or char in "_.-")  # no log injection
            return self.failed(ctx, provider, code, f"{provider.name}: the provider answered error={shown}")
        if not bound or sealed is None:
            return self.failed(ctx, provider, "expired", f"{provider.name}: callback without a matching, unspent state")
        if ctx.user is not None:
            return redirect("/")
        try:
            identity = await self.clients.finish(
                provider,
                self.redirect_uri(ctx, provider),
                code=query.get("code", ""),
                verifier=sealed["v"],
                nonce=sealed["n"],
                iss=query.get("iss"),
            )
        except sso.SignInError as err:
            return self.failed(ctx, provider, err.code, str(err))
        except Exception as err:  # whatever a provider sends: a clear page, never a 500 (the type only: no secrets)
            return self.failed(ctx, provider, "provider_error", f"{provider.name}: unexpected {type(err).__name__}")
        try:
            row, created = await self.account_for(identity, invite=sealed.get("i") or None)
        except Refused as refusal:
            return self.render(
                ctx,
                "error.html",
                status=refusal.status,
                title=ctx.t("sso.refused_title", provider=label(provider)),
                message=ctx.t(refusal.key, provider=label(provider), email=identity.email or ""),
            )
        next_path = str(sealed.get("x") or "/")
        if created:
            await after_sign_up(self.shell, ctx, accounts.user_dict(row))  # the verification email, when one is due
            if next_path == "/":
                next_path = "/?done=welcome"
        return await self.shell.enter(ctx, row, next_path)

    async def account_for(self, identity: sso.Identity, *, invite: str | None) -> tuple[Any, bool]:
        """The account this identity signs into (its row) and whether it was just opened; raises Refused."""
        created = False
        try:
            async with self.gw.engine.begin() as conn:
                row = await sso.identity_user(conn, identity.provider, identity.subject)
                if row is None:
                    if not identity.email:
                        raise Refused("sso.no_email")
                    row = await sso.user_by_email(conn, identity.email)
                    if row is not None:
                        if not identity.email_verified:  # only an address the provider vouches for links accounts
                            raise Refused("sso.unverified_email")
                        if row.disabled:
                            raise Refused("login.disabled")
                        await sso.add_identity(conn, row.id, identity)
                    else:
                        user = await self.shell.open_account(
                            conn, identity.email, email_verified=identity.email_verified, invite=invite
                        )
                        await sso.add_identity(conn, user["id"], identity)
                        row, created = await accounts.get_user(conn, user["id"]), True
        except PermissionDenied as err:
            raise Refused("sso.invite_only" if err.code == "invite_invalid" else "sso.signup_closed") from None
        except GatewayError as err:
            log.warning("sign-in with %s: no account (%s)", identity.provider, err.code)
            raise Refused("sso.no_account", 400) from None
        if row.disabled:
            raise Refused("login.disabled")
        return row, created

    def failed(self, ctx: Ctx, provider: OidcProvider, code: str, detail: str) -> web.Response:
        log.warning("sign-in with %s failed: %s", provider.name, detail)
        name = label(provider)
        return self.render(
            ctx,
            "error.html",
            status=STATUS.get(code, 400),
            title=ctx.t("sso.failed_title", provider=name),
            message=ctx.t(f"sso.error_{code}", provider=name),
        )

    # -- the cookie that carries the nonce and verifier across the round trip ------------------------

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(base64.urlsafe_b64encode(self.gw.box.derive_key("console-sign-in")))
        return self._fernet

    def seal(self, values: dict[str, str]) -> str:
        return self.fernet.encrypt(json.dumps(values).encode()).decode()

    def unseal(self, value: str | None) -> dict[str, str] | None:
        if not value or len(value) > 4096:
            return None
        try:
            values = json.loads(self.fernet.decrypt(value.encode(), ttl=LIFETIME))
        except (InvalidToken, ValueError):
            return None
        return values if isinstance(values, dict) else None

    # -- the account's linked sign-ins ---------------------------------------------------------------

    @page("user")
    async def identities(self, ctx: Ctx) -> web.StreamResponse:
        async with self.gw.engine.connect() as conn:
            linked = await sso.list_identities(conn, ctx.user_id)
        names = {provider.name: label(provider) for provider in self.gw.settings.sign_in_providers}
        for item in linked:
            item["label"] = names.get(item["provider"], item["provider"])
        return self.render(ctx, "sso_account.html", title=ctx.t("sso.account_title"), identities=linked, providers=self.buttons())
