"""Email: password reset by an emailed link, email verification at sign-up, the no-SMTP fallback.

A real SMTP server on loopback (aiosmtpd, with AUTH; one variant offers STARTTLS, one speaks TLS from the
first byte), a real gateway and Debian's chromium. Each browser flow runs in English and in Chinese, and the
emails are checked as received: subject, plain-text and HTML parts, language, link.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import html as html_lib
import ipaddress
import logging
import os
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from playwright import sync_api

from tests.console.conftest import PASSWORD, log_in, make_user
from tests.support.harness import Harness
from tests.support.processes import free_port
from tokenhub.accounts import links
from tokenhub.accounts import service as accounts
from tokenhub.app import CONSOLE
from tokenhub.cli import main
from tokenhub.console.i18n import translator
from tokenhub.console.pages.recovery import Mailer
from tokenhub.mail import Mailbox, MailError

SMTP_USER, SMTP_PASSWORD = "mailer", "smtp-pass-Zq81"
NEW_PASSWORD = "a-brand-new-passphrase"
LANGS = [pytest.param("en", id="en"), pytest.param("zh", id="zh")]
LOCALES = {"en": "en-US", "zh": "zh-CN"}
T = TypeVar("T")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Inbox:
    """An SMTP server on loopback that keeps every message it accepts."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{self.port}"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)  # type: ignore[arg-type]
            self.sessions.append(
                {"tls": session.ssl is not None, "authenticated": session.authenticated, "to": envelope.rcpt_tos}
            )
            self.arrived.notify_all()
        return "250 OK"

    def wait(self, count: int = 1, timeout: float = 10) -> list[EmailMessage]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.messages) >= count, timeout), (
                f"{len(self.messages)} of {count} emails arrived"
            )
            return list(self.messages)


def authenticate(server, session, envelope, mechanism, data) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == SMTP_USER.encode() and data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port, authenticator=authenticate, auth_require_tls=False)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def mail_console(make_gateway: Callable[..., Harness], sqlite_url: str, inbox: Inbox) -> Harness:
    return make_gateway(sqlite_url, smtp_url=inbox.url, mail_from="noreply@tokenhub.test")


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    body = message.get_body(("html",))
    assert text is not None and body is not None, "an email has a plain-text and an HTML part"
    return text.get_content(), body.get_content()


def link_in(message: EmailMessage, path: str) -> str:
    text, body = parts(message)
    found = re.findall(rf"http://127\.0\.0\.1:\d+{re.escape(path)}\?token=[\w-]+", text)
    assert len(found) == 1, text
    assert f'href="{html_lib.escape(found[0])}"' in body  # the same link in the HTML part
    return found[0]


def check_language(message: EmailMessage, lang: str, subject_key: str, intro_key: str) -> None:
    t = translator(lang)
    assert message["Subject"] == t(subject_key)
    text, body = parts(message)
    assert t(intro_key) in text
    assert html_lib.escape(t(intro_key), quote=False) in body
    assert f'<html lang="{"zh-CN" if lang == "zh" else "en"}">' in body
    if lang == "zh":
        assert re.search("[\u4e00-\u9fff]", message["Subject"])
        assert not re.search(r"\b(the|your|link)\b", text)  # no English sentence left in the Chinese email
    assert message["From"] == "TokenHub <noreply@tokenhub.test>"
    assert message["Date"] and message["Message-ID"]


def ask_reset(page: sync_api.Page, address: str) -> str:
    page.goto("/login")
    page.click("a[href='/password/forgot']")
    page.fill("#email", address)
    page.click("form[action='/password/forgot'] button[type=submit]")
    return page.get_by_test_id("reset-sent").inner_text()


def in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a thread of its own: Playwright's sync API keeps an event loop in this one, so asyncio.run()
    (the CLI's, or a direct ``Mailbox.send``) must run elsewhere."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            failure.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if failure:
        raise failure[0]
    return result[0]


def cli(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return in_thread(lambda: CliRunner().invoke(main, list(args), env=env, prog_name="tokenhub"))


# -- password reset ---------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_reset_by_email_ends_every_session(mail_console, inbox, open_page, lang):
    t = translator(lang)
    user = make_user(mail_console, f"reset-{lang}@example.com")
    other = open_page(mail_console, locale=LOCALES[lang])  # signed in before the reset: must be signed out after
    log_in(other, user["email"])
    page = open_page(mail_console, locale=LOCALES[lang])
    page.goto("/login")
    assert page.locator("a[href='/password/forgot']").inner_text() == t("recovery.forgot_link")

    assert ask_reset(page, user["email"]) == t("recovery.sent", email=user["email"])
    [message] = inbox.wait(1)
    assert inbox.sessions[0] == {"tls": False, "authenticated": True, "to": [user["email"]]}
    check_language(message, lang, "recovery.email.reset_subject", "recovery.email.reset_intro")
    assert t("recovery.email.reset_expiry", minutes=60) in parts(message)[0]
    link = link_in(message, "/password/reset")

    for _ in range(2):  # showing the form (a mail scanner fetching the link) does not spend it
        page.goto(link)
        assert page.locator("h1").inner_text() == t("recovery.reset_title")
        assert page.locator("#password").is_visible()
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD + "x")
    page.click("form[action='/password/reset'] button[type=submit]")
    assert page.get_by_role("alert").inner_text() == t("error.code.passwords_differ")  # the link still works
    page.eval_on_selector_all("input[minlength]", "inputs => inputs.forEach(i => i.removeAttribute('minlength'))")
    page.fill("#password", "short")
    page.fill("#confirm", "short")
    page.click("form[action='/password/reset'] button[type=submit]")
    assert page.get_by_role("alert").inner_text() == t("error.param.password", min=8)
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("form[action='/password/reset'] button[type=submit]")
    page.wait_for_url("**/login?done=password_reset")
    assert page.get_by_role("status").inner_text() == t("recovery.notice_reset")

    other.goto("/keys")  # the session made before the reset has ended
    assert "/login" in other.url
    page.fill("#email", user["email"])
    page.fill("#password", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    assert page.get_by_role("alert").inner_text() == t("login.failed")  # the old password no longer works
    log_in(page, user["email"], NEW_PASSWORD)
    assert page.locator("h1").inner_text() == t("dashboard.title")

    page.goto(link)  # single use
    assert page.get_by_test_id("reset-invalid").inner_text() == t("recovery.link_invalid")
    response = page.request.get(link)
    assert response.status == 400


def test_the_same_page_whether_or_not_the_account_exists(mail_console, inbox, new_page, open_page):
    user = make_user(mail_console, "known@example.com")
    make_user(mail_console, "off@example.com")
    mail_console.write(lambda c: accounts.set_disabled(c, "off@example.com", True))
    page = open_page(mail_console)
    t = translator("en")
    started = time.monotonic()
    assert ask_reset(page, "nobody@example.com") == t("recovery.sent", email="nobody@example.com")
    unknown_time = time.monotonic() - started
    assert ask_reset(page, "off@example.com") == t("recovery.sent", email="off@example.com")  # disabled: no email either
    started = time.monotonic()
    assert ask_reset(page, user["email"]) == t("recovery.sent", email=user["email"])
    known_time = time.monotonic() - started
    assert unknown_time < 2 and known_time < 2  # the lookup and sending happen after the answer
    inbox.wait(1)
    time.sleep(0.5)  # the other two requests ran first: nothing else arrives
    assert [m["To"] for m in inbox.messages] == [user["email"]]

    page.goto("/password/forgot")
    page.fill("#email", "not-an-address")
    page.eval_on_selector("#email", "e => e.type = 'text'")  # past the browser's own check
    page.click("form[action='/password/forgot'] button[type=submit]")
    assert page.get_by_role("alert").inner_text() == t("error.param.email")

    # Requests are counted per client address (4 so far): the 11th in 15 minutes is refused, for any address.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    statuses = [page.request.post("/password/forgot", form={"csrf": csrf, "email": f"n{i}@example.com"}) for i in range(7)]
    assert [r.status for r in statuses] == [200] * 6 + [429]
    assert int(statuses[-1].headers["retry-after"]) > 0 and "Too many reset requests" in statuses[-1].text()
    assert len(inbox.messages) == 1


@pytest.mark.parametrize("lang", LANGS)
def test_expired_and_unknown_links_are_refused(mail_console, open_page, lang):
    t = translator(lang)
    user = make_user(mail_console, f"late-{lang}@example.com")
    expired = mail_console.write(lambda c: links.create_link(c, "reset", user_id=user["id"], lifetime=dt.timedelta(seconds=-1)))
    verify = mail_console.write(lambda c: links.create_link(c, "verify", user_id=user["id"], email=user["email"]))
    page = open_page(mail_console, locale=LOCALES[lang])
    for url in (
        f"/password/reset?token={expired}",
        "/password/reset?token=not-a-token",
        "/password/reset",
        f"/password/reset?token={verify}",
    ):
        response = page.goto(url)
        assert response is not None and response.status == 400
        assert page.get_by_test_id("reset-invalid").inner_text() == t("recovery.link_invalid")
        assert page.locator("a[href='/password/forgot']").is_visible()
    # A POST with a dead token (a form left open past the hour) is refused the same way, and changes nothing.
    page.goto("/password/forgot")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    response = page.request.post(
        "/password/reset",
        form={"csrf": csrf, "token": expired, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        headers={"Accept-Language": LOCALES[lang]},
    )
    assert response.status == 400 and t("recovery.link_invalid") in response.text()
    log_in(page, user["email"], PASSWORD)


# -- verification at sign-up ----------------------------------------------------------------------


def sign_up(page: sync_api.Page, address: str) -> None:
    page.goto("/signup")
    page.fill("#email", address)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("form[action='/signup'] button[type=submit]")
    page.wait_for_url("**/?done=welcome")


def create_key(page: sync_api.Page, name: str) -> None:
    page.goto("/keys")
    page.fill("#name", name)
    page.click("form[action='/keys'] button[type=submit]")


@pytest.mark.parametrize("lang", LANGS)
def test_required_verification_blocks_keys_until_the_link_is_followed(make_gateway, sqlite_url, inbox, open_page, lang):
    t = translator(lang)
    console = make_gateway(sqlite_url, smtp_url=inbox.url, mail_from="noreply@tokenhub.test", signup_verify="required")
    page = open_page(console, locale=LOCALES[lang])
    address = f"new-{lang}@example.com"
    sign_up(page, address)
    assert t("recovery.notice_required") in page.get_by_test_id("verify-notice").inner_text()
    [first] = inbox.wait(1)
    check_language(first, lang, "recovery.email.verify_subject", "recovery.email.verify_intro")

    create_key(page, "blocked")
    assert page.get_by_role("alert").inner_text() == t("error.code.email_unverified")
    assert page.get_by_test_id("new-key").count() == 0
    assert console.read(lambda c: accounts.list_keys(c, address)) == []
    chat = page.request.post(
        "/playground/chat",
        form={"csrf": page.locator("input[name=csrf]").first.get_attribute("value") or "", "model": "x", "messages": "[]"},
    )
    assert chat.status == 403 and "email_unverified" in chat.text()  # no Playground key either

    page.get_by_test_id("verify-notice").locator("button[type=submit]").click()  # Resend
    page.wait_for_url("**/keys?done=verify_sent")
    assert page.get_by_role("status").first.inner_text() == t("recovery.notice_verify_sent")
    messages = inbox.wait(2)
    link = link_in(messages[1], "/verify")
    assert link_in(messages[0], "/verify") != link
    page.get_by_test_id("verify-notice").locator("button[type=submit]").click()  # a third email is still allowed ...
    inbox.wait(3)
    page.get_by_test_id("verify-notice").locator("button[type=submit]").click()  # ... a fourth within the hour is not
    page.wait_for_url("**/keys?done=verify_wait")
    assert page.get_by_role("status").first.inner_text() == t("recovery.notice_verify_wait")
    time.sleep(0.3)
    assert len(inbox.messages) == 3

    page.goto(link)
    assert page.get_by_test_id("verified").inner_text() == t("recovery.verified")
    assert console.read(lambda c: accounts.get_user(c, address)).email_verified_at is not None
    create_key(page, "allowed")
    assert page.get_by_test_id("new-key").inner_text()
    assert page.get_by_test_id("verify-notice").count() == 0
    page.goto(link)  # spent
    assert page.get_by_test_id("verify-invalid").inner_text() == t("recovery.verify_invalid")


def test_optional_verification_shows_a_notice_and_off_sends_nothing(make_gateway, sqlite_url, inbox, open_page):
    optional = make_gateway(sqlite_url, smtp_url=inbox.url)
    page = open_page(optional, locale="zh-CN")
    sign_up(page, "maybe@example.com")
    assert translator("zh")("recovery.notice_optional") in page.get_by_test_id("verify-notice").inner_text()
    create_key(page, "fine")  # optional: keys are allowed
    assert page.get_by_test_id("new-key").is_visible()
    [message] = inbox.wait(1)
    assert message["To"] == "maybe@example.com"

    off = make_gateway(f"{sqlite_url}-off", smtp_url=inbox.url, signup_verify="off")
    page = open_page(off)
    sign_up(page, "trusted@example.com")
    assert page.get_by_test_id("verify-notice").count() == 0
    assert off.read(lambda c: accounts.get_user(c, "trusted@example.com")).email_verified_at is not None
    time.sleep(0.3)
    assert len(inbox.messages) == 1


def test_a_verification_link_for_an_old_address_does_not_verify(mail_console):
    user = make_user(mail_console, "was@example.com")
    token = mail_console.write(lambda c: links.create_link(c, "verify", user_id=user["id"], email="other@example.com"))
    from tokenhub.accounts import recovery

    assert mail_console.write(lambda c: recovery.verify_email(c, token)) is None


# -- without SMTP ------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_without_smtp_the_operator_prints_a_link(console, open_page, tmp_path, sqlite_url, lang):
    t = translator(lang)
    user = make_user(console, f"nomail-{lang}@example.com")
    page = open_page(console, locale=LOCALES[lang])
    page.goto("/login")
    page.click("a[href='/password/forgot']")
    assert page.get_by_test_id("reset-unavailable").inner_text() == t("recovery.unavailable")
    assert page.locator("form[action='/password/forgot']").count() == 0

    env = {
        "TOKENHUB_HOME": str(tmp_path / "cli"),
        "TOKENHUB_DATABASE_URL": sqlite_url,
        "TOKENHUB_SECRET_KEY": "test-secret-key",
        "TOKENHUB_PUBLIC_URL": console.server.url,
        "TOKENHUB_SMTP_URL": "",
        "TOKENHUB_SIGNUP_VERIFY": "",
    }
    result = cli(env, "user", "reset-link", user["email"].upper())
    assert result.exit_code == 0, result.output
    link = result.stdout.strip()
    assert re.fullmatch(rf"{re.escape(console.server.url)}/password/reset\?token=[\w-]{{40,}}", link), link
    assert "60 minutes" in result.stderr
    refused = cli(env, "user", "reset-link", "nobody@example.com")
    assert refused.exit_code == 1 and "no user" in refused.stderr and refused.stdout == ""

    page.goto(link)
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("form[action='/password/reset'] button[type=submit]")
    page.wait_for_url("**/login?done=password_reset")
    log_in(page, user["email"], NEW_PASSWORD)
    page.goto(link)
    assert page.get_by_test_id("reset-invalid").inner_text() == t("recovery.link_invalid")


def test_settings_refuse_what_cannot_work():
    from tokenhub.config import Settings

    with pytest.raises(SystemExit, match="TOKENHUB_SIGNUP_VERIFY=required needs TOKENHUB_SMTP_URL"):
        Settings.from_env({"TOKENHUB_SIGNUP_VERIFY": "required"})
    with pytest.raises(SystemExit, match="needs TOKENHUB_PUBLIC_URL"):
        Settings.from_env({"TOKENHUB_SMTP_URL": "smtp://u:p@127.0.0.1:25"})
    with pytest.raises(SystemExit, match="must look like smtp://"):
        Settings.from_env({"TOKENHUB_SMTP_URL": "http://u:p@127.0.0.1", "TOKENHUB_PUBLIC_URL": "https://console.example"})
    settings = Settings.from_env(
        {
            "TOKENHUB_SMTP_URL": "smtp://u:p@127.0.0.1:25",
            "TOKENHUB_PUBLIC_URL": "https://console.example/",
            "TOKENHUB_SIGNUP_VERIFY": "required",
        }
    )
    assert (settings.public_url, settings.signup_verify) == ("https://console.example", "required")


# -- the SMTP server down, and TLS -----------------------------------------------------------------


def test_smtp_down_keeps_the_page_and_the_secrets(make_gateway, sqlite_url, open_page, caplog):
    secret = "hunter2-smtp-secret"
    console = make_gateway(sqlite_url, smtp_url=f"smtp://mailer:{secret}@127.0.0.1:{free_port()}")
    user = make_user(console, "down@example.com")
    page = open_page(console)
    caplog.set_level(logging.INFO)
    assert ask_reset(page, user["email"]) == translator("en")("recovery.sent", email=user["email"])
    mailer = console.server.app[CONSOLE].console.shell.mailer
    assert mailer is not None
    deadline = time.monotonic() + 10
    while mailer.tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mailer.tasks
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "password reset: email not sent: the SMTP server 127.0.0.1:" in logged
    assert secret not in logged and secret not in page.content()
    assert "token=" not in logged


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def send(mailbox: Mailbox, *args: str) -> None:
    in_thread(lambda: asyncio.run(mailbox.send(*args)))  # type: ignore[arg-type]


def test_mailbox_upgrades_with_starttls_and_speaks_smtps(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate, as a real CA would be trusted
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    starttls = Inbox(free_port())
    one = Controller(
        starttls,
        hostname="127.0.0.1",
        port=starttls.port,
        authenticator=authenticate,
        tls_context=server_tls,
        require_starttls=True,
    )
    implicit = Inbox(free_port())
    two = Controller(
        implicit,
        hostname="127.0.0.1",
        port=implicit.port,
        authenticator=authenticate,
        ssl_context=server_tls,
        auth_require_tls=False,
    )  # aiosmtpd counts only STARTTLS as TLS for AUTH; this connection is TLS throughout
    one.start()
    two.start()
    try:
        send(Mailbox.from_url(starttls.url, "ops@example.com"), "a@example.com", "主题", "正文", "<p>正文</p>")
        [message] = starttls.wait(1)
        assert starttls.sessions[0]["tls"] and starttls.sessions[0]["authenticated"]  # upgraded before AUTH
        assert message["Subject"] == "主题" and [part.strip() for part in parts(message)] == ["正文", "<p>正文</p>"]

        smtps = implicit.url.replace("smtp://", "smtps://")
        send(Mailbox.from_url(smtps, None), "b@example.com", "Hi", "text only")
        [message] = implicit.wait(1)  # that server speaks nothing but TLS
        assert message["From"] == "TokenHub <tokenhub@127.0.0.1>"

        wrong = starttls.url.replace(SMTP_PASSWORD, "not-the-password")
        with pytest.raises(MailError) as refused:
            send(Mailbox.from_url(wrong, None), "a@example.com", "s", "t")
        assert "not-the-password" not in str(refused.value) and "SMTPAuthenticationError" in str(refused.value)
    finally:
        one.stop()
        two.stop()


# -- screenshots ---------------------------------------------------------------------------------


def test_screenshots(make_gateway, sqlite_url, inbox, open_page, tmp_path):
    """The new pages and emails in both languages (into docs/screenshots with TOKENHUB_SCREENSHOTS=1)."""
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    console = make_gateway(sqlite_url, smtp_url=inbox.url, mail_from="noreply@tokenhub.test", signup_verify="required")
    for number, lang in enumerate(("en", "zh")):
        size = {"width": 1000, "height": 640}
        page = open_page(console, locale=LOCALES[lang], viewport=size)
        ask_reset(page, make_user(console, f"shot-{lang}@example.com")["email"])
        page.screenshot(path=str(target / f"forgot-sent-{lang}.png"))
        message = inbox.wait(2 * number + 1)[-1]
        page.goto(link_in(message, "/password/reset"))
        page.screenshot(path=str(target / f"reset-{lang}.png"))
        sign_up(page, f"fresh-{lang}@example.com")
        create_key(page, "laptop")
        page.screenshot(path=str(target / f"keys-unverified-{lang}.png"), full_page=True)
        letter = open_page(console, viewport={"width": 640, "height": 640})
        letter.set_content(parts(message)[1])
        letter.screenshot(path=str(target / f"email-reset-{lang}.png"), full_page=True)
    for png in target.glob("*.png"):
        assert png.stat().st_size < 400_000


def test_email_text_is_plain_and_html_is_escaped():
    mailer = Mailer(None)  # type: ignore[arg-type] - rendering needs no gateway
    url = "https://console.example/password/reset?token=a&b=<c>"
    for lang in ("en", "zh"):
        subject, text, body = mailer.render("reset", lang, "recovery.email.reset_subject", url=url, minutes=60)
        assert subject == translator(lang)("recovery.email.reset_subject")
        assert url in text and "&amp;" not in text  # plain text is not HTML-escaped
        assert 'href="https://console.example/password/reset?token=a&amp;b=&lt;c&gt;"' in body and "<c>" not in body
