"""Two-factor sign-in: turning it on (a QR code drawn by the server), the second step of signing in (a code works once,
a recovery code works once), turning it off with step-up, TOKENHUB_REQUIRE_ADMIN_2FA, and step-up for making an admin
and changing a channel's upstream key.

A real gateway and Debian's chromium; codes are computed with pyotp from the secret the page shows, as an
authenticator app would. Each browser flow runs in English and in Chinese.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import time
from pathlib import Path
from urllib.parse import unquote

import pyotp
import pytest
from playwright import sync_api
from playwright.sync_api import expect
from sqlalchemy import select, update

from tests.console.conftest import PASSWORD, csrf_of, log_in, make_user, run_cli
from tests.support.harness import Harness
from tokenhub.console.i18n import translator
from tokenhub.console.pages.two_factor import qr_data_uri
from tokenhub.storage.tables import channels as channels_table
from tokenhub.storage.tables import recovery_codes, users

LANGS = [pytest.param("en", id="en"), pytest.param("zh", id="zh")]
LOCALES = {"en": "en-US", "zh": "zh-CN"}


def user_row(console: Harness, email: str):
    return console.read(lambda c: _one(c, select(users).where(users.c.email == email)))


async def _one(conn, query):
    return (await conn.execute(query)).one()


async def _all(conn, query):
    return (await conn.execute(query)).all()


def next_code(secret: str) -> str:
    """The code of the next time step (still inside the accepted window): never one already used."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def turn_on(page: sync_api.Page, lang: str = "en") -> tuple[str, list[str]]:
    """Sets up 2FA from /account/2fa as a user would: returns the secret read from the page and the recovery codes."""
    t = translator(lang)
    page.goto("/account/2fa")
    expect(page.get_by_test_id("two-factor-state")).to_have_text(t("two_factor.state_off"))
    page.click("form[action='/account/2fa/setup'] button[type=submit]")
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    assert len(secret) == 32
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("form[action='/account/2fa/enable'] button[type=submit]")
    expect(page.locator("h1")).to_have_text(t("two_factor.codes_title"))
    codes = page.get_by_test_id("recovery-codes").inner_text().split()
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def log_out(page: sync_api.Page) -> None:
    page.click("form.logout button[type=submit]")
    page.wait_for_url("**/login")


def password_step(page: sync_api.Page, email: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/login/2fa")


def second_step(page: sync_api.Page, code: str) -> None:
    page.fill("#code", code)
    page.click("form[action='/login/2fa'] button[type=submit]")


@pytest.mark.parametrize("lang", LANGS)
def test_turn_on_sign_in_with_codes_and_turn_off(console, open_page, lang, caplog):
    caplog.set_level(logging.INFO)
    t = translator(lang)
    make_user(console, "ann@example.com")
    page = open_page(console, locale=LOCALES[lang])
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    log_in(page, "ann@example.com")

    # The account page leads to the 2FA page.
    page.goto("/account/password")
    page.get_by_role("link", name=t("two_factor.account_link")).click()
    expect(page.locator("h1")).to_have_text(t("two_factor.title"))

    # Setting up: a QR code drawn by the server (an SVG data: URI, no third party), the secret as text.
    page.click("form[action='/account/2fa/setup'] button[type=submit]")
    expect(page.locator("h1")).to_have_text(t("two_factor.setup_title"))
    qr = page.get_by_test_id("qr")
    src = qr.get_attribute("src") or ""
    assert src.startswith("data:image/svg+xml")
    svg = (
        unquote(src.split(",", 1)[1])
        if ";base64" not in src.split(",", 1)[0]
        else base64.b64decode(src.split(",", 1)[1]).decode()
    )
    assert "<svg" in svg and "<path" in svg
    assert page.evaluate("document.querySelector('[data-testid=qr]').naturalWidth") > 0
    secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    assert len(secret) == 32
    # the QR code is the otpauth URI of this secret, for this account
    uri = pyotp.TOTP(secret).provisioning_uri(name="ann@example.com", issuer_name="TokenHub")
    assert src == qr_data_uri(uri) and "secret=" + secret in uri
    # the secret is stored, but encrypted; not yet in force
    row = user_row(console, "ann@example.com")
    assert row.totp_secret and secret not in row.totp_secret and row.totp_enabled_at is None

    # a wrong code is refused and the same secret is shown again
    page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.click("form[action='/account/2fa/enable'] button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text(t("two_factor.code_wrong"))
    assert page.get_by_test_id("totp-secret").inner_text().replace(" ", "") == secret
    assert user_row(console, "ann@example.com").totp_enabled_at is None

    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("form[action='/account/2fa/enable'] button[type=submit]")
    expect(page.locator("h1")).to_have_text(t("two_factor.codes_title"))
    expect(page.get_by_role("status")).to_have_text(t("two_factor.notice_on"))
    codes = page.get_by_test_id("recovery-codes").inner_text().split()
    assert len(codes) == 10
    expect(page.locator("button[data-copy-target='recovery-codes']")).to_have_text(t("common.copy"))
    row = user_row(console, "ann@example.com")
    assert row.totp_enabled_at is not None and secret not in row.totp_secret
    stored = console.read(lambda c: _all(c, select(recovery_codes.c.code_hash).where(recovery_codes.c.user_id == row.id)))
    assert len(stored) == 10 and not {code.replace("-", "") for code in codes} & {r.code_hash for r in stored}
    page.goto("/account/2fa")
    expect(page.get_by_test_id("two-factor-state")).to_have_text(t("two_factor.state_on"))
    expect(page.get_by_test_id("codes-left")).to_have_text(t("two_factor.codes_left", count=10))
    assert all(url.startswith(console.server.url) or url.startswith("data:") for url in requested)

    # Signing in again: the password is not enough.
    log_out(page)
    password_step(page, "ann@example.com")
    expect(page.locator("h1")).to_have_text(t("two_factor.login_title"))
    for path in ("/", "/keys", "/account/2fa", "/account/password", "/login"):  # the pending sign-in opens nothing else
        page.goto(path)
        expect(page.locator("form.logout")).to_have_count(0)
        if path != "/":
            expect(page.locator("h1")).to_have_text(t("login.title"))
    page.goto("/login/2fa")
    second_step(page, "12345")
    expect(page.get_by_role("alert")).to_have_text(t("two_factor.code_wrong"))
    code = next_code(secret)
    second_step(page, code)
    page.wait_for_url(lambda url: "/login" not in url)
    expect(page.locator("form.logout")).to_have_count(1)

    # the same code cannot be used twice
    log_out(page)
    password_step(page, "ann@example.com")
    second_step(page, code)
    expect(page.get_by_role("alert")).to_have_text(t("two_factor.code_wrong"))
    # a recovery code works, once (typed in capitals, without the dash)
    second_step(page, codes[0].replace("-", "").upper())
    page.wait_for_url(lambda url: "/login" not in url)
    log_out(page)
    password_step(page, "ann@example.com")
    second_step(page, codes[0])
    expect(page.get_by_role("alert")).to_have_text(t("two_factor.code_wrong"))
    second_step(page, codes[1])
    page.wait_for_url(lambda url: "/login" not in url)

    # Turning it off needs the password (or a code) again.
    page.goto("/account/2fa")
    expect(page.get_by_test_id("codes-left")).to_have_text(t("two_factor.codes_left", count=8))
    page.click("form[action='/account/2fa/disable'] button[type=submit]")
    expect(page.get_by_test_id("two-factor-error")).to_have_text(t("two_factor.step_up_missing"))
    page.fill("#disable-confirm-password", "not-the-password")
    page.click("form[action='/account/2fa/disable'] button[type=submit]")
    expect(page.get_by_test_id("two-factor-error")).to_have_text(t("two_factor.step_up_wrong"))
    page.fill("#disable-confirm-code", code)  # already used: refused too
    page.click("form[action='/account/2fa/disable'] button[type=submit]")
    expect(page.get_by_test_id("two-factor-error")).to_have_text(t("two_factor.step_up_wrong"))
    assert user_row(console, "ann@example.com").totp_enabled_at is not None
    page.fill("#disable-confirm-password", PASSWORD)
    page.click("form[action='/account/2fa/disable'] button[type=submit]")
    expect(page.get_by_role("status")).to_have_text(t("two_factor.notice_off"))
    expect(page.get_by_test_id("two-factor-state")).to_have_text(t("two_factor.state_off"))
    row = user_row(console, "ann@example.com")
    assert row.totp_secret is None and row.totp_enabled_at is None and row.totp_last_step is None
    assert console.read(lambda c: _all(c, select(recovery_codes).where(recovery_codes.c.user_id == row.id))) == []
    log_out(page)
    log_in(page, "ann@example.com")  # the password alone again
    expect(page.locator("form.logout")).to_have_count(1)

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert secret not in logged and codes[2] not in logged


def test_recovery_codes_regenerate_with_step_up_and_pending_sign_in_rules(console, new_page):
    make_user(console, "bob@example.com")
    page = new_page()
    log_in(page, "bob@example.com")
    secret, codes = turn_on(page)

    # new codes need step-up; with a current code they replace the old ones
    page.goto("/account/2fa")
    page.click("form[action='/account/2fa/recovery-codes'] button[type=submit]")
    expect(page.get_by_test_id("two-factor-error")).to_contain_text("Not confirmed")
    page.fill("#regenerate-confirm-code", next_code(secret))
    page.click("form[action='/account/2fa/recovery-codes'] button[type=submit]")
    fresh = page.get_by_test_id("recovery-codes").inner_text().split()
    assert len(fresh) == 10 and not set(fresh) & set(codes)

    # a pending sign-in belongs to its browser: another browser with the cookie copied gets nothing
    log_out(page)
    password_step(page, "bob@example.com")
    pending = [c for c in page.context.cookies() if c["name"] == "th_2fa"]
    assert len(pending) == 1 and secret not in pending[0]["value"]
    other = new_page()
    other.context.add_cookies([{**pending[0]}])
    other.goto("/login/2fa")
    expect(other.locator("h1")).to_have_text("Two-factor sign-in")
    expect(other.locator("main")).to_contain_text("This sign-in has expired")
    other.goto("/login")
    response = other.request.post("/login/2fa", form={"csrf": csrf_of(other), "code": fresh[0]})
    assert "form.logout" not in response.text() and "This sign-in has expired" in response.text()
    # an old recovery code no longer works; a new one does
    second_step(page, codes[3])
    expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    second_step(page, fresh[0])
    page.wait_for_url(lambda url: "/login" not in url)
    # the pending cookie is gone once signed in; /login/2fa is for signed-out browsers
    assert not [c for c in page.context.cookies() if c["name"] == "th_2fa"]
    page.goto("/login/2fa")
    assert not page.url.endswith("/login/2fa")

    # too many wrong codes are throttled like failed logins
    log_out(page)
    password_step(page, "bob@example.com")
    for _ in range(5):
        second_step(page, "9999-9999-9999-9999")
        expect(page.get_by_role("alert")).to_be_visible()
    second_step(page, fresh[1])
    expect(page.locator("h1")).to_have_text("Too many attempts")


@pytest.mark.parametrize("lang", LANGS)
def test_require_admin_2fa_forces_setup(make_gateway, sqlite_url, open_page, lang):
    t = translator(lang)
    console = make_gateway(sqlite_url, require_admin_2fa=True)
    make_user(console, "boss@example.com", admin=True)
    cust = make_user(console, "cust@example.com")
    page = open_page(console, locale=LOCALES[lang])
    log_in(page, "boss@example.com")
    expect(page).to_have_url(f"{console.server.url}/account/2fa")
    expect(page.get_by_test_id("two-factor-required")).to_have_text(t("two_factor.required"))
    for path in ("/", "/admin", "/admin/users", "/keys", "/account/password"):
        page.goto(path)
        expect(page).to_have_url(f"{console.server.url}/account/2fa")
    # admin forms are refused too (nothing changes)
    response = page.request.post(
        f"/admin/users/{cust['id']}/credits", form={"csrf": csrf_of(page), "amount": "50"}, max_redirects=0
    )
    assert response.status == 303 and response.headers["location"] == "/account/2fa"
    assert console.credits("cust@example.com")["balance_nanos"] == 0
    page.goto(f"/lang/{'zh' if lang == 'en' else 'en'}?next=/account/2fa")  # the language switch still works
    page.goto(f"/lang/{lang}?next=/account/2fa")

    # a customer is not concerned
    other = open_page(console, locale=LOCALES[lang])
    log_in(other, "cust@example.com")
    other.goto("/keys")
    expect(other).to_have_url(f"{console.server.url}/keys")

    secret, _ = turn_on(page, lang)
    page.goto("/admin/users")
    expect(page).to_have_url(f"{console.server.url}/admin/users")
    # and it stays on: no way to turn it off while required
    page.goto("/account/2fa")
    expect(page.get_by_test_id("two-factor-kept")).to_have_text(t("two_factor.cannot_turn_off"))
    expect(page.locator("form[action='/account/2fa/disable']")).to_have_count(0)
    response = page.request.post("/account/2fa/disable", form={"csrf": csrf_of(page), "confirm_password": PASSWORD})
    assert response.status == 403 and user_row(console, "boss@example.com").totp_enabled_at is not None

    # step-up with a two-factor code: making an admin
    page.goto(f"/admin/users/{cust['id']}")
    page.on("dialog", lambda d: d.accept())
    page.fill("#make-admin-confirm-code", "000000")
    page.click("form[action$='/make-admin'] button[type=submit]")
    expect(page.get_by_test_id("user-error")).to_have_text(t("two_factor.step_up_wrong"))
    assert not user_row(console, "cust@example.com").is_admin
    page.fill("#make-admin-confirm-code", next_code(secret))
    page.click("form[action$='/make-admin'] button[type=submit]")
    expect(page.get_by_role("status")).to_have_text(t("admin.users.notice_admin_granted"))
    assert user_row(console, "cust@example.com").is_admin

    # the new admin has no 2FA: sent to set it up on the next page
    other.goto("/keys")
    expect(other).to_have_url(f"{console.server.url}/account/2fa")


def stored_key(console: Harness, name: str) -> str:
    return console.read(lambda c: _one(c, select(channels_table.c.api_key_enc).where(channels_table.c.name == name))).api_key_enc


@pytest.mark.parametrize("lang", LANGS)
def test_step_up_for_make_admin_and_channel_key(console, open_page, upstream_url, lang):
    t = translator(lang)
    make_user(console, "boss@example.com", admin=True)
    cust = make_user(console, "cust@example.com")
    console.channel("openai-compatible", upstream_url, name="up", models="deepseek/deepseek-chat")
    page = open_page(console, locale=LOCALES[lang])
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    log_in(page, "boss@example.com")

    # Making an admin: refused without the password, and with a wrong one; nothing changes.
    page.goto(f"/admin/users/{cust['id']}")
    expect(page.locator("#make-admin-confirm-code")).to_have_count(0)  # no 2FA: the password only
    page.click("form[action$='/make-admin'] button[type=submit]")
    expect(page.get_by_test_id("user-error")).to_have_text(t("two_factor.step_up_missing"))
    page.fill("#make-admin-confirm-password", "wrong-password")
    page.click("form[action$='/make-admin'] button[type=submit]")
    expect(page.get_by_test_id("user-error")).to_have_text(t("two_factor.step_up_wrong"))
    assert not user_row(console, "cust@example.com").is_admin
    page.fill("#make-admin-confirm-password", PASSWORD)
    page.click("form[action$='/make-admin'] button[type=submit]")
    expect(page.get_by_role("status")).to_have_text(t("admin.users.notice_admin_granted"))
    assert user_row(console, "cust@example.com").is_admin

    # A channel: other fields change without step-up; a new key needs it.
    before = stored_key(console, "up")
    channel_id = console.read(lambda c: _one(c, select(channels_table.c.id).where(channels_table.c.name == "up"))).id
    page.goto(f"/admin/channels/{channel_id}")
    page.fill("#weight", "3")
    page.click("form.grid-form button[type=submit]")
    expect(page.get_by_role("status")).to_have_text(t("admin.channels.notice_saved"))
    assert stored_key(console, "up") == before
    page.goto(f"/admin/channels/{channel_id}")
    page.fill("#api_key", "sk-new-upstream-key-123")
    page.fill("#weight", "4")
    page.click("form.grid-form button[type=submit]")
    expect(page.get_by_test_id("channel-error")).to_have_text(t("two_factor.step_up_missing"))
    expect(page.locator("#weight")).to_have_value("4")  # the form comes back as typed, the key field empty
    expect(page.locator("#api_key")).to_have_value("")
    page.fill("#api_key", "sk-new-upstream-key-123")
    page.fill("#channel-key-confirm-password", "wrong-password")
    page.click("form.grid-form button[type=submit]")
    expect(page.get_by_test_id("channel-error")).to_have_text(t("two_factor.step_up_wrong"))
    assert stored_key(console, "up") == before
    assert console.read(lambda c: _one(c, select(channels_table.c.weight).where(channels_table.c.id == channel_id))).weight == 3
    page.fill("#api_key", "sk-new-upstream-key-123")
    page.fill("#channel-key-confirm-password", PASSWORD)
    page.click("form.grid-form button[type=submit]")
    expect(page.get_by_role("status")).to_have_text(t("admin.channels.notice_saved"))
    assert stored_key(console, "up") != before
    assert "sk-new-upstream-key-123" not in page.content()


def test_an_account_without_a_password_confirms_with_a_code(console, new_page):
    boss = make_user(console, "boss@example.com", admin=True)
    cust = make_user(console, "cust@example.com")
    page = new_page()
    page.on("dialog", lambda d: d.accept())
    log_in(page, "boss@example.com")
    # as if the account had been made by a sign-in provider: no password
    console.write(lambda c: c.execute(update(users).where(users.c.id == boss["id"]).values(password_hash=None)))
    page.goto(f"/admin/users/{cust['id']}")
    expect(page.locator("#make-admin-confirm-password")).to_have_count(0)
    expect(page.locator("form[action$='/make-admin']")).to_contain_text("set up two-factor sign-in first")
    response = page.request.post(f"/admin/users/{cust['id']}/make-admin", form={"csrf": csrf_of(page), "confirm_password": ""})
    assert response.status == 403 and "set up two-factor sign-in first" in response.text()
    assert not user_row(console, "cust@example.com").is_admin

    secret, _ = turn_on(page)
    page.goto(f"/admin/users/{cust['id']}")
    expect(page.locator("#make-admin-confirm-password")).to_have_count(0)
    page.fill("#make-admin-confirm-code", next_code(secret))
    page.click("form[action$='/make-admin'] button[type=submit]")
    expect(page.get_by_role("status")).to_have_text("The user is now an admin.")
    assert user_row(console, "cust@example.com").is_admin


def test_screenshots(console, open_page, tmp_path):
    """The two-factor pages in both languages (into docs/screenshots with TOKENHUB_SCREENSHOTS=1)."""
    target = Path(__file__).resolve().parents[2] / "docs" / "screenshots" if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "zh"):
        email = f"shots-{lang}@example.com"
        make_user(console, email)
        page = open_page(console, locale=LOCALES[lang], viewport={"width": 1000, "height": 640})
        log_in(page, email)
        page.goto("/account/2fa")
        page.click("form[action='/account/2fa/setup'] button[type=submit]")
        page.screenshot(path=str(target / f"two-factor-setup-{lang}.png"), full_page=True)
        secret = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
        page.fill("#code", pyotp.TOTP(secret).now())
        page.click("form[action='/account/2fa/enable'] button[type=submit]")
        page.screenshot(path=str(target / f"two-factor-codes-{lang}.png"), full_page=True)
        page.goto("/account/2fa")
        page.screenshot(path=str(target / f"two-factor-{lang}.png"), full_page=True)
        log_out(page)
        password_step(page, email)
        page.screenshot(path=str(target / f"two-factor-login-{lang}.png"))
    for png in target.glob("two-factor-*.png"):
        assert png.stat().st_size < 400_000


def test_a_pending_sign_in_lasts_five_minutes(console, new_page):
    import itsdangerous

    make_user(console, "cat@example.com")
    page = new_page()
    log_in(page, "cat@example.com")
    secret, _ = turn_on(page)
    log_out(page)
    password_step(page, "cat@example.com")
    cookie = next(c for c in page.context.cookies() if c["name"] == "th_2fa")
    key = console.gw.box.derive_key("console-2fa-pending")
    payload = itsdangerous.URLSafeTimedSerializer(
        key, salt="tokenhub.console.2fa", signer_kwargs={"digest_method": hashlib.sha256}
    ).loads(cookie["value"])

    def signed(age: int) -> str:
        class Signer(itsdangerous.TimestampSigner):
            def get_timestamp(self) -> int:
                return int(time.time()) - age

        serializer = itsdangerous.URLSafeTimedSerializer(
            key, salt="tokenhub.console.2fa", signer=Signer, signer_kwargs={"digest_method": hashlib.sha256}
        )
        return serializer.dumps(payload)

    page.context.add_cookies([{**cookie, "value": signed(301)}])
    page.goto("/login/2fa")
    expect(page.locator("main")).to_contain_text("This sign-in has expired")
    page.context.add_cookies([{**cookie, "value": signed(290)}])  # the same, younger: still valid
    page.goto("/login/2fa")
    second_step(page, next_code(secret))
    page.wait_for_url(lambda url: "/login" not in url)


def test_the_same_code_twice_at_once_passes_once(console):
    """Two requests with one code (or one recovery code) at the same moment: the conditional UPDATE lets one through."""
    import asyncio

    from tokenhub.accounts import two_factor

    user = make_user(console, "dan@example.com")
    box = console.gw.box

    async def set_up(conn):
        secret = await two_factor.begin(conn, box, user["id"])
        return secret, await two_factor.enable(conn, box, user["id"], pyotp.TOTP(secret).now())

    secret, codes = console.write(set_up)

    async def at_once(code: str) -> list[bool]:
        async def one() -> bool:
            async with console.gw.engine.begin() as conn:
                return await two_factor.verify(conn, box, user["id"], code)

        return list(await asyncio.gather(*(one() for _ in range(4))))

    assert sorted(console.run(at_once(next_code(secret)))) == [False, False, False, True]
    assert sorted(console.run(at_once(codes[0]))) == [False, False, False, True]
    row = user_row(console, "dan@example.com")
    assert row.totp_secret != secret and secret not in row.totp_secret


def test_an_operator_turns_off_a_lost_authenticator(console, new_page):
    """``tokenhub user 2fa-off EMAIL``: the user signs in with the password alone again; the admin's user page says
    whether an account has two-factor on, before and after."""
    make_user(console, "lost@example.com")
    make_user(console, "boss@example.com", admin=True)
    page = new_page()
    log_in(page, "lost@example.com")
    turn_on(page)
    log_out(page)
    admin = new_page()
    log_in(admin, "boss@example.com")
    lost = user_row(console, "lost@example.com")
    admin.goto(f"/admin/users/{lost.id}")
    expect(admin.get_by_test_id("user-2fa")).to_have_text("Two-factor on")

    done = run_cli(console, "user", "2fa-off", "lost@example.com")
    assert done.strip() == "two-factor sign-in turned off for lost@example.com"
    assert user_row(console, "lost@example.com").totp_secret is None
    log_in(page, "lost@example.com")  # no second step
    expect(page.locator("form[action='/logout']")).to_be_visible()
    admin.goto(f"/admin/users/{lost.id}")
    expect(admin.get_by_test_id("user-2fa")).to_have_text("No two-factor")
