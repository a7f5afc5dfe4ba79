"""Sign in with an OpenID Connect provider and with GitHub, in the browser.

The OpenID Connect provider is real: the npm package ``oidc-provider`` (a certified implementation) run by
tests/clients/oidc_provider.mjs on loopback, with one confidential client, PKCE required, and its development
login form (any account id; "unverified:" before an email makes the provider say it is not verified). Its
signing key comes from this module, so the verifier tests can also sign tokens with the issuer's real key —
with a wrong audience, an expired ``exp``, another nonce — and check that our verifier (the real one, against
the provider's real discovery document and JWKS) refuses them. GitHub is tests/support/fake_github.py.

Locally these tests skip when Node or ``npm ci --prefix tests/clients`` is missing; in CI they fail.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from playwright import sync_api
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.console.conftest import PASSWORD, make_user
from tests.support.fake_github import FakeGitHub, GitHubUser, start_fake_github
from tests.support.harness import Harness
from tests.support.processes import free_port
from tokenhub.accounts import links
from tokenhub.accounts import service as accounts
from tokenhub.accounts import sign_in_providers as sso
from tokenhub.config import OidcProvider, Settings
from tokenhub.storage.tables import account_links, user_identities, users

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
SCRIPT = CLIENTS / "oidc_provider.mjs"
CLIENT_ID, CLIENT_SECRET = "tokenhub-console", "a-client-secret-9f3k"
KEY = RSAKey.generate_key(2048, parameters={"kid": "issuer-key-1", "use": "sig", "alg": "RS256"}, private=True)
TEXT = {
    "en": {"button": "Continue with Acme", "denied": "You declined at Acme", "used": "has expired or has already been used",
           "closed": "does not accept new sign-ups", "unverified": "has not verified that address", "disabled": "This account is disabled"},
    "zh": {"button": "使用 Acme 继续", "denied": "你在 Acme 拒绝了授权", "used": "已过期或已被使用",
           "closed": "不接受新注册", "unverified": "尚未验证该地址", "disabled": "此账户已被停用"},
}  # fmt: skip
LOCALES = {"en": "en-US", "zh": "zh-CN"}


def _node_ready() -> None:
    if not (CLIENTS / "node_modules" / "oidc-provider" / "package.json").exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("oidc-provider is missing: .ci/run installs it with npm ci --prefix tests/clients")
        pytest.skip("oidc-provider is not installed (npm ci --prefix tests/clients)")


class Issuer:
    """oidc-provider in a Node process, for one gateway's redirect URI."""

    def __init__(self, port: int, redirect_uri: str, workdir: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = workdir / f"oidc-{port}.json"
        config.write_text(
            json.dumps(
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [redirect_uri],
                    "jwks": {"keys": [KEY.as_dict(private=True)]},
                }
            )
        )
        self.log = workdir / f"oidc-{port}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                ["node", str(SCRIPT), str(port), str(config)], cwd=CLIENTS, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"oidc-provider exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"oidc-provider did not listen: {self.log.read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def acme(make_gateway: Callable[..., Harness], sqlite_url: str, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """``acme(**settings)``: a gateway whose sign-in provider "acme" is a real oidc-provider on loopback."""
    _node_ready()
    started: list[Issuer] = []

    def start(**overrides: Any) -> Harness:
        port = free_port()
        provider = OidcProvider("acme", "oidc", CLIENT_ID, CLIENT_SECRET, f"http://127.0.0.1:{port}")
        harness = make_gateway(sqlite_url, sign_in_providers=(provider,), **overrides)
        started.append(Issuer(port, f"{harness.server.url}/auth/acme/callback", tmp_path))
        harness.issuer = started[-1]  # type: ignore[attr-defined]
        return harness

    yield start
    for issuer in started:
        issuer.stop()


def sign_in_at_acme(page: sync_api.Page, lang: str, account: str) -> None:
    """From the console's login page through the provider's login and consent, back to the console."""
    page.goto("/login")
    page.get_by_role("link", name=TEXT[lang]["button"]).click()
    page.wait_for_url("**/interaction/**")
    page.fill("input[name=login]", account)
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.get_by_role("button", name="Continue").click()  # the provider's consent screen


def count(harness: Harness, table: Any) -> int:
    return harness.read(lambda c: _scalar(c, select(func.count()).select_from(table)))


async def _scalar(conn: Any, query: Any) -> Any:
    return (await conn.execute(query)).scalar_one()


def identities(harness: Harness) -> list[tuple[int, str, str, str]]:
    async def read(conn: Any) -> list[tuple[int, str, str, str]]:
        rows = await conn.execute(select(user_identities).order_by(user_identities.c.id))
        return [(row.user_id, row.provider, row.subject, row.email) for row in rows]

    return harness.read(read)


def user_row(harness: Harness, email: str) -> Any:
    return harness.read(lambda c: _first(c, select(users).where(users.c.email == email)))


async def _first(conn: Any, query: Any) -> Any:
    return (await conn.execute(query)).first()


def expect_signed_in(page: sync_api.Page) -> None:
    page.wait_for_url(lambda url: "/auth/" not in url and "/interaction/" not in url)
    expect(page.locator("form[action='/logout']")).to_be_visible()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_new_identity_opens_an_account_and_signs_into_it_again(
    acme: Callable[..., Harness], open_page: Callable[..., sync_api.Page], lang: str
) -> None:
    gw = acme()
    page = open_page(gw, locale=LOCALES[lang])
    sign_in_at_acme(page, lang, "ann@example.com")
    expect_signed_in(page)
    assert "done=welcome" in page.url
    ann = user_row(gw, "ann@example.com")
    assert ann is not None and ann.email_verified_at is not None and ann.password_hash is None
    assert identities(gw) == [(ann.id, "acme", "ann@example.com", "ann@example.com")]
    assert count(gw, users) == 1

    again = open_page(gw, locale=LOCALES[lang])  # another browser: the provider asks again, the account is the same
    sign_in_at_acme(again, lang, "ann@example.com")
    expect_signed_in(again)
    assert "done=welcome" not in again.url
    assert count(gw, users) == 1 and len(identities(gw)) == 1
    again.goto("/account/sign-in")
    expect(again.locator("table")).to_contain_text("Acme")
    expect(again.locator("table")).to_contain_text("ann@example.com")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_only_a_verified_email_links_an_existing_account(
    acme: Callable[..., Harness], open_page: Callable[..., sync_api.Page], lang: str
) -> None:
    gw = acme()
    bob = make_user(gw, "bob@example.com")
    make_user(gw, "carol@example.com")

    page = open_page(gw, locale=LOCALES[lang])
    sign_in_at_acme(page, lang, "bob@example.com")
    expect_signed_in(page)
    assert identities(gw) == [(bob["id"], "acme", "bob@example.com", "bob@example.com")]

    other = open_page(gw, locale=LOCALES[lang])
    sign_in_at_acme(other, lang, "unverified:carol@example.com")
    expect(other.locator("main")).to_contain_text(TEXT[lang]["unverified"])
    expect(other.locator("form[action='/logout']")).to_have_count(0)
    assert len(identities(gw)) == 1 and count(gw, users) == 2
    other.goto("/login")  # carol's password still works, and nothing was linked to her account
    other.fill("#email", "carol@example.com")
    other.fill("#password", PASSWORD)
    other.click("form[action='/login'] button[type=submit]")
    expect_signed_in(other)

    gw.write(lambda c: accounts.set_disabled(c, bob["id"], True))  # a disabled account: refused, linked or not
    later = open_page(gw, locale=LOCALES[lang])
    sign_in_at_acme(later, lang, "bob@example.com")
    expect(later.locator("main")).to_contain_text(TEXT[lang]["disabled"])
    expect(later.locator("form[action='/logout']")).to_have_count(0)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_closed_sign_up_refuses_a_new_identity(
    acme: Callable[..., Harness], open_page: Callable[..., sync_api.Page], lang: str
) -> None:
    gw = acme(signup="closed")
    make_user(gw, "dan@example.com")
    page = open_page(gw, locale=LOCALES[lang])
    sign_in_at_acme(page, lang, "eve@example.com")
    expect(page.locator("main")).to_contain_text(TEXT[lang]["closed"])
    assert count(gw, users) == 1 and identities(gw) == []
    dan = open_page(gw, locale=LOCALES[lang])
    sign_in_at_acme(dan, lang, "dan@example.com")  # an existing account still signs in (and is linked)
    expect_signed_in(dan)
    assert [row[2] for row in identities(gw)] == ["dan@example.com"]


def test_invite_only_sign_up_spends_the_invite_it_was_started_from(
    acme: Callable[..., Harness], open_page: Callable[..., sync_api.Page]
) -> None:
    gw = acme(signup="invite")
    page = open_page(gw)
    sign_in_at_acme(page, "en", "fay@example.com")  # from the login page: no invite
    expect(page.locator("main")).to_contain_text("by invitation only")
    assert count(gw, users) == 0

    invite = gw.write(lambda c: links.create_link(c, "invite", note="for fay"))
    page = open_page(gw)
    page.goto(f"/signup?invite={invite}")
    page.get_by_role("link", name="Continue with Acme").click()
    page.fill("input[name=login]", "fay@example.com")
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.get_by_role("button", name="Continue").click()
    expect_signed_in(page)
    fay = user_row(gw, "fay@example.com")
    used = gw.read(lambda c: _first(c, select(account_links).where(account_links.c.purpose == "invite")))
    assert fay is not None and used.used_by == fay.id


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_replayed_callback_and_a_refusal_at_the_provider_are_refused(
    acme: Callable[..., Harness], open_page: Callable[..., sync_api.Page], browser: sync_api.Browser, lang: str
) -> None:
    gw = acme()
    page = open_page(gw, locale=LOCALES[lang])
    callbacks: list[str] = []
    page.on("request", lambda request: callbacks.append(request.url) if "/auth/acme/callback" in request.url else None)
    page.goto("/login")
    page.get_by_role("link", name=TEXT[lang]["button"]).click()
    page.wait_for_url("**/interaction/**")
    flow_cookie = [c for c in page.context.cookies() if c["name"] == "th_sign_in"]
    assert len(flow_cookie) == 1 and flow_cookie[0]["httpOnly"]
    page.fill("input[name=login]", "gus@example.com")
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.get_by_role("button", name="Continue").click()
    expect_signed_in(page)
    assert len(callbacks) == 1 and "code=" in callbacks[0] and "state=" in callbacks[0]

    # The same callback again, with the flow's cookie (state, nonce, verifier) as it was: the state is spent.
    replay = browser.new_context(base_url=gw.server.url, locale=LOCALES[lang])
    try:
        replay.add_cookies(flow_cookie)
        other = replay.new_page()
        response = other.goto(callbacks[0])
        assert response is not None and response.status == 400
        expect(other.locator("main")).to_contain_text(TEXT[lang]["used"])
        expect(other.locator("form[action='/logout']")).to_have_count(0)
    finally:
        replay.close()

    # Saying no at the provider: a clear page, not signed in.
    refused = open_page(gw, locale=LOCALES[lang])
    refused.goto("/login")
    refused.get_by_role("link", name=TEXT[lang]["button"]).click()
    refused.wait_for_url("**/interaction/**")
    refused.get_by_role("link", name="[ Cancel ]").click()
    refused.wait_for_url("**/auth/acme/callback**")
    expect(refused.locator("main")).to_contain_text(TEXT[lang]["denied"])
    expect(refused.locator("form[action='/logout']")).to_have_count(0)
    assert count(gw, users) == 1


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_bad_code_a_mixed_up_issuer_and_an_unreachable_provider_get_clear_pages(
    acme: Callable[..., Harness],
    make_gateway: Callable[..., Harness],
    tmp_path: Path,
    open_page: Callable[..., sync_api.Page],
    lang: str,
) -> None:
    gw = acme()
    texts = {
        "en": ("Acme did not accept this sign-in", "We could not reach Acme"),
        "zh": ("Acme 未接受此次登录", "无法连接 Acme"),
    }[lang]
    for bad in ("code=not-a-code-the-provider-issued", "code=whatever&iss=http%3A%2F%2Fevil.example"):
        page = open_page(gw, locale=LOCALES[lang])
        states: list[str] = []
        page.on(
            "request",
            lambda r, states=states: (
                states.extend(parse_qs(urlsplit(r.url).query).get("state", [])) if "/auth?" in r.url else None
            ),
        )
        page.goto("/login")
        page.get_by_role("link", name=TEXT[lang]["button"]).click()
        page.wait_for_url("**/interaction/**")
        assert len(states) == 1
        response = page.goto(f"/auth/acme/callback?{bad}&state={states[0]}")  # the flow's own state and cookie
        assert response is not None and response.status == 400
        expect(page.locator("main")).to_contain_text(texts[0])
        expect(page.locator("form[action='/logout']")).to_have_count(0)
        assert CLIENT_SECRET not in page.content()

    nowhere = OidcProvider("acme", "oidc", CLIENT_ID, CLIENT_SECRET, f"http://127.0.0.1:{free_port()}")
    down = make_gateway(f"sqlite:///{tmp_path / 'down.db'}", sign_in_providers=(nowhere,))
    page = open_page(down, locale=LOCALES[lang])
    page.goto("/login")
    page.get_by_role("link", name=TEXT[lang]["button"]).click()
    expect(page.locator("main")).to_contain_text(texts[1])
    assert count(gw, users) == 0


# -- the ID token verifier, against the real issuer's discovery document and JWKS ---------------------


def _id_token(issuer: str, key: RSAKey = KEY, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": "hal", "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": "the-nonce",
              "email": "hal@example.com", "email_verified": True}  # fmt: skip
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def test_the_verifier_refuses_tampered_foreign_expired_misaddressed_and_replayed_tokens(acme: Callable[..., Harness]) -> None:
    gw = acme()
    issuer = gw.issuer.url  # type: ignore[attr-defined]
    provider = gw.settings.sign_in_providers[0]
    clients = sso.SignInProviders((provider,))

    def verify(token: str, nonce: str = "the-nonce") -> dict[str, Any] | str:
        async def go() -> dict[str, Any] | str:
            try:
                return await clients.verify_id_token(provider, token, nonce)
            except sso.SignInError as err:
                assert CLIENT_SECRET not in str(err)
                return err.code

        return gw.run(go())

    try:
        good = _id_token(issuer)
        assert verify(good)["sub"] == "hal"  # type: ignore[index]
        header, payload, signature = good.split(".")
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        assert verify(f"{header}.{payload}.{flipped}") == "bad_token"  # tampered signature
        other_claims = _id_token(issuer, sub="admin").split(".")[1]
        assert verify(f"{header}.{other_claims}.{signature}") == "bad_token"  # tampered claims
        stranger = RSAKey.generate_key(2048, parameters={"kid": KEY.kid}, private=True)
        assert verify(_id_token(issuer, key=stranger)) == "bad_token"  # same kid, a key not in the JWKS
        unknown = RSAKey.generate_key(2048, parameters={"kid": "not-published"}, private=True)
        assert verify(_id_token(issuer, key=unknown)) == "bad_token"  # unknown kid: JWKS fetched again, still refused
        assert verify(_id_token(issuer, aud="another-client")) == "bad_token"
        assert verify(_id_token(issuer, aud=["another-client", CLIENT_ID])) == "bad_token"  # several audiences, no azp
        assert verify(_id_token(issuer, aud=["another-client", CLIENT_ID], azp=CLIENT_ID))["sub"] == "hal"  # type: ignore[index]
        assert verify(_id_token(issuer, aud=[CLIENT_ID, "x"], azp="another-client")) == "bad_token"
        past = int(time.time()) - 3600
        assert verify(_id_token(issuer, iat=past - 300, exp=past)) == "bad_token"  # expired
        assert verify(_id_token(issuer, exp=None)) == "bad_token"
        assert verify(_id_token(issuer, iat=int(time.time()) + 3600)) == "bad_token"  # issued in the future
        assert verify(good, nonce="another-nonce") == "bad_token"  # wrong nonce
        assert verify(_id_token(issuer, nonce=None)) == "bad_token"
        assert verify(_id_token(issuer + "/evil")) == "bad_token"  # another issuer
        none = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
        assert verify(f"{none}.{payload}.") == "bad_token"  # unsigned
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        hmac_signed = jwt.encode({"alg": "HS256", "kid": KEY.kid}, claims, OctKey.import_key(b"k" * 32), algorithms=["HS256"])
        assert verify(hmac_signed) == "bad_token"  # an algorithm the issuer does not use
    finally:
        gw.run(clients.close())


# -- GitHub ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_sign_in_with_github(
    make_gateway: Callable[..., Harness], sqlite_url: str, open_page: Callable[..., sync_api.Page], lang: str
) -> None:
    fake = FakeGitHub("Iv1.fakeclient", "fake-github-secret")
    fake.users["octo"] = GitHubUser(
        "octo", 583231, "Octo Cat",
        [{"email": "octo@users.noreply.github.com", "primary": False, "verified": True, "visibility": None},
         {"email": "Octo@Example.com", "primary": True, "verified": True, "visibility": "public"}],
    )  # fmt: skip
    server = start_fake_github(fake)
    try:
        gw = make_gateway(
            sqlite_url,
            sign_in_providers=(OidcProvider("github", "github", fake.client_id, fake.client_secret),),
            github_url=server.url,
            github_api_url=f"{server.url}/api/v3",
        )
        button = {"en": "Continue with GitHub", "zh": "使用 GitHub 继续"}[lang]
        page = open_page(gw, locale=LOCALES[lang])
        page.goto("/signup")
        page.get_by_role("link", name=button).click()
        page.wait_for_url(f"{server.url}/login/oauth/authorize?**")
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("main")).to_contain_text({"en": "You declined at GitHub", "zh": "你在 GitHub 拒绝了授权"}[lang])
        assert count(gw, users) == 0

        page.goto("/login")
        page.get_by_role("link", name=button).click()
        page.select_option("#login", "octo")
        page.get_by_role("button", name="Authorize").click()
        expect_signed_in(page)
        octo = user_row(gw, "octo@example.com")
        assert octo is not None and octo.email_verified_at is not None
        assert identities(gw) == [(octo.id, "github", "583231", "octo@example.com")]
        sent = fake.token_requests[-1]
        assert sent["client_secret"] == "<redacted>" and len(sent["code_verifier"]) >= 43
        assert sent["redirect_uri"] == f"{gw.server.url}/auth/github/callback"
    finally:
        server.stop()


def test_github_enterprise_addresses_come_from_the_environment(tmp_path: Path) -> None:
    env = {"TOKENHUB_HOME": str(tmp_path), "TOKENHUB_GITHUB_CLIENT_ID": "id", "TOKENHUB_GITHUB_CLIENT_SECRET": "secret"}
    default = Settings.from_env(env)
    assert (default.github_url, default.github_api_url) == ("https://github.com", "https://api.github.com")
    ghes = Settings.from_env(
        {**env, "TOKENHUB_GITHUB_URL": "https://git.example.com/", "TOKENHUB_GITHUB_API_URL": "https://git.example.com/api/v3"}
    )
    assert (ghes.github_url, ghes.github_api_url) == ("https://git.example.com", "https://git.example.com/api/v3")
    assert ghes.sign_in_providers == (OidcProvider("github", "github", "id", "secret"),)


def test_a_provider_sign_in_still_asks_for_the_second_factor(
    acme: Callable[..., Harness], open_page: Callable[..., sync_api.Page]
) -> None:
    """Every way in ends in Shell.enter: an account with two-factor on that signs in through a provider gets the
    code step too, and the provider's word alone opens no page."""
    from tests.console.test_two_factor import next_code, second_step, turn_on

    gw = acme()
    page = open_page(gw)
    sign_in_at_acme(page, "en", "tess@example.com")
    expect_signed_in(page)
    secret, _ = turn_on(page)
    page.click("form.logout button[type=submit]")
    page.wait_for_url("**/login")

    other = open_page(gw)
    sign_in_at_acme(other, "en", "tess@example.com")
    other.wait_for_url("**/login/2fa")
    assert other.goto("/keys").url.startswith(f"{gw.server.url}/login?next=")  # pending: not signed in
    other.goto("/login/2fa")
    second_step(other, next_code(secret))
    expect(other.locator("form[action='/logout']")).to_be_visible()
    assert other.goto("/keys").url == f"{gw.server.url}/keys"


def test_screenshots(acme: Callable[..., Harness], open_page: Callable[..., sync_api.Page], tmp_path: Path) -> None:
    """The login page with a provider's button and the linked identities, in both languages (into docs/screenshots
    with TOKENHUB_SCREENSHOTS=1)."""
    target = Path(__file__).resolve().parents[2] / "docs" / "screenshots" if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    gw = acme()
    for lang in ("en", "zh"):
        page = open_page(gw, locale=LOCALES[lang], viewport={"width": 1000, "height": 640})
        page.goto("/login")
        page.screenshot(path=str(target / f"login-providers-{lang}.png"))
        sign_in_at_acme(page, lang, "shot@example.com")
        expect_signed_in(page)
        page.goto("/account/sign-in")
        page.screenshot(path=str(target / f"sign-in-identities-{lang}.png"))
    for png in target.glob("*-providers-*.png"):
        assert png.stat().st_size < 400_000
