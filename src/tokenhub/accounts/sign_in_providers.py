"""Sign in with GitHub, Google or any OpenID Connect provider: the protocol half, and the identities table.

OpenID Connect (Google, Microsoft, Keycloak, ...): the Authorization Code flow with PKCE (S256), ``state``
and ``nonce``. The issuer's ``/.well-known/openid-configuration`` says where to send the user and where to
redeem the code; the ID token that comes back is verified with Authlib/joserfc — its signature against the
issuer's JWKS (cached; fetched again once for a key id it does not know), its ``iss``, ``aud`` (and ``azp``
when it names several audiences), ``exp``, ``iat`` and ``nonce``. The email and whether the provider has
verified it come from the ID token, else from the userinfo endpoint (for the same ``sub``).

GitHub is OAuth, not OpenID Connect: no ID token. Its numeric user id is the subject, and the email is the
primary verified address of ``GET /user/emails``. ``TOKENHUB_GITHUB_URL`` / ``TOKENHUB_GITHUB_API_URL`` point
it at GitHub Enterprise Server.

Nothing here ever puts a client secret, a code, or a token in an exception message or a log line.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from sqlalchemy import insert, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from tokenhub.config import OidcProvider
from tokenhub.errors import Conflict
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import as_utc, utc_now
from tokenhub.storage.tables import user_identities, users

DISCOVERY_TTL = 3600.0  # seconds a provider's discovery document and JWKS are reused
LEEWAY = 60  # seconds of clock skew allowed on exp / iat
TIMEOUT = 10.0  # seconds for any one call to a provider
MAX_DOCUMENT = 1024 * 1024  # bytes: a provider's answers are small


class SignInError(Exception):
    """The sign-in could not finish. ``code`` says why, for the page shown to the user: ``denied`` (the user
    said no at the provider), ``provider_error``, ``unreachable``, ``rejected`` (the provider refused the
    code), ``bad_token`` (the ID token failed verification). The message is for logs: never a secret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str = ""


class SignInProviders:
    """The configured providers and the HTTP calls to them (one aiohttp session, opened on first use)."""

    def __init__(
        self,
        providers: tuple[OidcProvider, ...],
        *,
        github_url: str = "https://github.com",
        github_api_url: str = "https://api.github.com",
        timeout: float = TIMEOUT,
    ) -> None:
        self.providers = {provider.name: provider for provider in providers}
        self.github_url = github_url.rstrip("/")
        self.github_api_url = github_api_url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self._jwks: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, name: str) -> OidcProvider | None:
        return self.providers.get(name)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- starting ------------------------------------------------------------------------------------

    async def authorize_url(self, provider: OidcProvider, redirect_uri: str, *, state: str, nonce: str, verifier: str) -> str:
        """Where to send the browser: the provider's authorization endpoint with our request."""
        from authlib.oauth2.rfc7636 import create_s256_code_challenge  # Authlib loads at the first sign-in, not at start

        params = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if provider.kind == "github":
            params.update(scope="read:user user:email", allow_signup="true")
            endpoint = f"{self.github_url}/login/oauth/authorize"
        else:
            metadata = await self.metadata(provider)
            params.update(scope="openid email profile", nonce=nonce)
            endpoint = str(metadata["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"

    # -- finishing -----------------------------------------------------------------------------------

    async def finish(
        self, provider: OidcProvider, redirect_uri: str, *, code: str, verifier: str, nonce: str, iss: str | None = None
    ) -> Identity:
        """Redeem the code (with the PKCE verifier) and say who signed in; raises SignInError. ``iss``: the
        callback's ``iss`` parameter (RFC 9207), which must name this provider's issuer when it is there."""
        if not code or len(code) > 2048:
            raise SignInError("rejected", f"{provider.name}: no usable code in the callback")
        try:
            if provider.kind == "github":
                return await self._finish_github(provider, redirect_uri, code, verifier)
            if iss is not None and provider.kind == "oidc" and iss.rstrip("/") != (await self.metadata(provider))["issuer"].rstrip("/"):
                raise SignInError("rejected", f"{provider.name}: the callback names another issuer")  # a mix-up
            return await self._finish_oidc(provider, redirect_uri, code, verifier, nonce)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            raise SignInError("unreachable", f"{provider.name}: {type(err).__name__} talking to the provider") from None

    async def _finish_oidc(self, provider: OidcProvider, redirect_uri: str, code: str, verifier: str, nonce: str) -> Identity:
        metadata = await self.metadata(provider)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        headers = {}
        if "client_secret_basic" in methods or "client_secret_post" not in methods:
            # RFC 6749 2.3.1: the id and secret are form-encoded before they go into the Basic header
            headers["Authorization"] = aiohttp.encode_basic_auth(
                quote(provider.client_id, safe=""), quote(provider.client_secret, safe="")
            )
        else:
            form.update(client_id=provider.client_id, client_secret=provider.client_secret)
        status, token = await self._call("POST", str(metadata["token_endpoint"]), data=form, headers=headers)
        if status != 200 or not isinstance(token, dict) or "id_token" not in token:
            error = token.get("error") if isinstance(token, dict) else None
            raise SignInError("rejected", f"{provider.name}: the token endpoint answered {status} {error or ''}".strip())
        claims = await self.verify_id_token(provider, str(token["id_token"]), nonce, access_token=token.get("access_token"))
        email, verified = claims.get("email"), claims.get("email_verified")
        if not email and metadata.get("userinfo_endpoint") and token.get("access_token"):
            status, info = await self._call(
                "GET", str(metadata["userinfo_endpoint"]), headers={"Authorization": f"Bearer {token['access_token']}"}
            )
            if status == 200 and isinstance(info, dict) and info.get("sub") == claims["sub"]:  # OIDC Core 5.3.2
                email, verified = info.get("email"), info.get("email_verified")
        return Identity(
            provider.name,
            str(claims["sub"]),
            str(email).strip().lower() if email else None,
            verified is True or verified == "true",  # some issuers send the string
            str(claims.get("name") or ""),
        )

    async def verify_id_token(
        self, provider: OidcProvider, id_token: str, nonce: str, *, access_token: str | None = None
    ) -> dict[str, Any]:
        """The ID token's claims once its signature (the issuer's JWKS), ``iss``, ``aud``/``azp``, ``exp``,
        ``iat`` and ``nonce`` check out; SignInError("bad_token") otherwise."""
        from authlib.oidc.core import CodeIDToken
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError
        from joserfc.jwk import KeySet
        from joserfc.jws import JWSRegistry

        metadata = await self.metadata(provider)
        algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=[alg for alg in algorithms if alg != "none"], strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, KeySet.import_key_set(await self.jwks(provider, metadata)), registry=registry)
            except InvalidKeyIdError:  # the issuer may have rotated its keys: fetch them once more
                token = jwt.decode(
                    id_token, KeySet.import_key_set(await self.jwks(provider, metadata, fresh=True)), registry=registry
                )
            options = {
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": provider.client_id},
                "exp": {"essential": True},
                "iat": {"essential": True},
                "sub": {"essential": True},
                "nonce": {"essential": True},
            }
            params = {"nonce": nonce, "client_id": provider.client_id}
            if access_token:
                params["access_token"] = access_token
            claims = CodeIDToken(token.claims, token.header, options, params)
            claims.validate(now=int(time.time()), leeway=LEEWAY)
        except (JoseError, ValueError, TypeError) as err:
            raise SignInError("bad_token", f"{provider.name}: the ID token was refused ({type(err).__name__})") from None
        return dict(claims)

    async def _finish_github(self, provider: OidcProvider, redirect_uri: str, code: str, verifier: str) -> Identity:
        form = {
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        status, token = await self._call("POST", f"{self.github_url}/login/oauth/access_token", data=form)
        if status != 200 or not isinstance(token, dict) or not token.get("access_token"):
            error = token.get("error") if isinstance(token, dict) else None  # GitHub answers 200 {"error": ...}
            raise SignInError("rejected", f"github: the access_token endpoint answered {status} {error or ''}".strip())
        headers = {
            "Authorization": f"Bearer {token['access_token']}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        status, user = await self._call("GET", f"{self.github_api_url}/user", headers=headers)
        if status != 200 or not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise SignInError("provider_error", f"github: GET /user answered {status}")
        status, emails = await self._call("GET", f"{self.github_api_url}/user/emails", headers=headers)
        email, verified = None, False
        if status == 200 and isinstance(emails, list):
            entries = [entry for entry in emails if isinstance(entry, dict) and entry.get("email")]
            chosen = next((e for e in entries if e.get("primary") and e.get("verified")), None)
            chosen = chosen or next((e for e in entries if e.get("primary")), None)
            if chosen is not None:
                email, verified = str(chosen["email"]).strip().lower(), chosen.get("verified") is True
        return Identity(provider.name, str(user["id"]), email, verified, str(user.get("name") or user.get("login") or ""))

    # -- discovery -----------------------------------------------------------------------------------

    async def metadata(self, provider: OidcProvider) -> dict[str, Any]:
        """The issuer's discovery document (cached for an hour); SignInError when it is unusable."""
        cached = self._metadata.get(provider.issuer)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        url = f"{provider.issuer}/.well-known/openid-configuration"
        try:
            status, document = await self._call("GET", url)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            raise SignInError("unreachable", f"{provider.name}: {type(err).__name__} fetching the discovery document") from None
        required = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if status != 200 or not isinstance(document, dict) or not all(isinstance(document.get(k), str) for k in required):
            raise SignInError("provider_error", f"{provider.name}: no usable discovery document at {url} ({status})")
        if document["issuer"].rstrip("/") != provider.issuer.rstrip("/"):  # OIDC Discovery 4.3
            raise SignInError("provider_error", f"{provider.name}: the discovery document names another issuer")
        self._metadata[provider.issuer] = (time.monotonic(), document)
        return document

    async def jwks(self, provider: OidcProvider, metadata: dict[str, Any], *, fresh: bool = False) -> dict[str, Any]:
        cached = self._jwks.get(provider.issuer)
        if cached is not None and not fresh and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1]
        try:
            status, document = await self._call("GET", str(metadata["jwks_uri"]))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            raise SignInError("unreachable", f"{provider.name}: {type(err).__name__} fetching the JWKS") from None
        if status != 200 or not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise SignInError("provider_error", f"{provider.name}: no usable JWKS ({status})")
        self._jwks[provider.issuer] = (time.monotonic(), document)
        return document

    # -- HTTP ----------------------------------------------------------------------------------------

    async def _call(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, the JSON answer or None). Raises aiohttp/timeout errors; ValueError for a non-http URL."""
        if not url.startswith(("https://", "http://")):
            raise ValueError("not an http(s) URL")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"Accept": "application/json", "User-Agent": "TokenHub"},
            )
        async with self._session.request(method, url, allow_redirects=False, **kwargs) as response:
            body = await response.content.read(MAX_DOCUMENT + 1)
            if len(body) > MAX_DOCUMENT:
                return response.status, None
            try:
                return response.status, json.loads(body)
            except ValueError:
                return response.status, None


# -- identities (the user_identities table) ----------------------------------------------------------


async def identity_user(conn: AsyncConnection, provider: str, subject: str) -> Row[Any] | None:
    """The account this (provider, subject) signs into, if it has been seen before."""
    return (
        await conn.execute(
            select(users)
            .select_from(users.join(user_identities, user_identities.c.user_id == users.c.id))
            .where(user_identities.c.provider == provider, user_identities.c.subject == subject)
        )
    ).first()


async def user_by_email(conn: AsyncConnection, email: str) -> Row[Any] | None:
    return (await conn.execute(select(users).where(users.c.email == email.strip().lower()))).first()


async def add_identity(conn: AsyncConnection, user_id: int, identity: Identity) -> None:
    """Links the identity to the account; Conflict if another browser linked it a moment ago."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(user_identities).values(
                    user_id=user_id,
                    provider=identity.provider,
                    subject=identity.subject[:255],
                    email=identity.email,
                    created_at=utc_now(),
                )
            )
    except IntegrityError:
        raise Conflict("this sign-in is already linked to an account", code="identity_linked") from None


async def list_identities(conn: AsyncConnection, user_id: int) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(user_identities).where(user_identities.c.user_id == user_id).order_by(user_identities.c.created_at)
    )
    return [{"provider": row.provider, "email": row.email or "", "created_at": as_utc(row.created_at)} for row in rows]
