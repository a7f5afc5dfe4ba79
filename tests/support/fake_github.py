"""A stand-in for GitHub's OAuth apps on loopback, speaking GitHub's documented shapes ("Authorizing OAuth
apps", "Troubleshooting OAuth app access token request errors", the REST ``/user`` and ``/user/emails``).

- ``GET /login/oauth/authorize``: a page asking the signed-in GitHub user (a ``login`` the test picks) to
  authorize the app; "Authorize" redirects to ``redirect_uri?code=…&state=…``, "Cancel" to
  ``redirect_uri?error=access_denied&error_description=…&state=…``.
- ``POST /login/oauth/access_token`` (form: client_id, client_secret, code, redirect_uri, code_verifier):
  ``{"access_token", "token_type": "bearer", "scope"}`` — or, with HTTP 200 as GitHub does, ``{"error":
  "incorrect_client_credentials" | "bad_verification_code" | "redirect_uri_mismatch", ...}``. A code is
  good once, for the client and redirect URI it was issued to, and with PKCE only for the right verifier.
- The REST API under ``/api/v3`` (as on GitHub Enterprise Server): ``GET /user`` and ``GET /user/emails``
  with ``Authorization: Bearer <token>``; 401 ``{"message": "Bad credentials"}`` otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.support.servers import ServerThread


@dataclass
class GitHubUser:
    login: str
    id: int
    name: str
    emails: list[dict[str, Any]]  # [{"email", "primary", "verified", "visibility"}]


@dataclass
class FakeGitHub:
    client_id: str
    client_secret: str
    users: dict[str, GitHubUser] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> login
    token_requests: list[dict[str, str]] = field(default_factory=list)  # what our server sent (secret redacted)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/login/oauth/authorize", self.authorize),
                web.post("/login/oauth/authorize", self.decide),
                web.post("/login/oauth/access_token", self.access_token),
                web.get("/api/v3/user", self.user),
                web.get("/api/v3/user/emails", self.emails),
            ]
        )
        return app

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != self.client_id:
            return web.Response(status=404, text="Not Found")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items()
            if k in ("client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "scope")
        )
        options = "".join(f'<option value="{html.escape(u)}">{html.escape(u)}</option>' for u in self.users)
        page = (
            "<!doctype html><title>Authorize application</title><h1>Authorize TokenHub</h1>"
            f'<form method="post" action="/login/oauth/authorize">{hidden}'
            f'<label>Signed in to GitHub as <select name="login" id="login">{options}</select></label>'
            '<button name="decision" value="authorize" id="js-oauth-authorize-btn">Authorize</button>'
            '<button name="decision" value="cancel">Cancel</button></form>'
        )
        return web.Response(text=page, content_type="text/html")

    async def decide(self, request: web.Request) -> web.Response:
        form = await request.post()
        redirect_uri, state = str(form.get("redirect_uri", "")), str(form.get("state", ""))
        if form.get("decision") != "authorize":
            params = {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "state": state,
            }
            raise web.HTTPFound(f"{redirect_uri}?{urlencode(params)}")
        code = secrets.token_hex(10)
        self.codes[code] = {
            "login": str(form["login"]),
            "redirect_uri": redirect_uri,
            "challenge": str(form.get("code_challenge", "")),
        }
        raise web.HTTPFound(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

    async def access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests.append({k: ("<redacted>" if k == "client_secret" else str(v)) for k, v in form.items()})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return self._error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
        grant = self.codes.pop(str(form.get("code", "")), None)
        if grant is None:
            return self._error("bad_verification_code", "The code passed is incorrect or expired.")
        if form.get("redirect_uri") and form.get("redirect_uri") != grant["redirect_uri"]:
            return self._error(
                "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application."
            )
        if grant["challenge"]:
            digest = hashlib.sha256(str(form.get("code_verifier", "")).encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
                return self._error("bad_verification_code", "The code passed is incorrect or expired.")
        token = "gho_" + secrets.token_hex(18)
        self.tokens[token] = grant["login"]
        return web.json_response({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"})

    def _error(self, error: str, description: str) -> web.Response:
        return web.json_response({"error": error, "error_description": description, "error_uri": "https://docs.github.com/apps"})

    def _signed_in(self, request: web.Request) -> GitHubUser:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        login = self.tokens.get(token) if scheme.lower() in ("bearer", "token") else None
        if login is None:
            raise web.HTTPUnauthorized(
                text='{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}',
                content_type="application/json",
            )
        return self.users[login]

    async def user(self, request: web.Request) -> web.Response:
        user = self._signed_in(request)
        public = next((e["email"] for e in user.emails if e.get("visibility") == "public"), None)
        return web.json_response(
            {"login": user.login, "id": user.id, "node_id": f"U_{user.id}", "type": "User", "name": user.name, "email": public}
        )

    async def emails(self, request: web.Request) -> web.Response:
        return web.json_response(self._signed_in(request).emails)


def start_fake_github(fake: FakeGitHub) -> ServerThread:
    """The fake on a loopback port: TOKENHUB_GITHUB_URL is its url, TOKENHUB_GITHUB_API_URL its url + /api/v3."""
    return ServerThread(fake.app()).start()
