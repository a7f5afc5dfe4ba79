"""The console in a real browser: the customer's story, languages, CSRF, brute force, XSS, isolation, phones."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.console.conftest import PASSWORD, csrf_of, log_in, make_user
from tokenhub.billing import service as billing
from tokenhub.money import usd_to_nanos

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def api_status(console, key: str) -> int:
    request = urllib.request.Request(f"{console.base_url}/key", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def create_key(page: Page, name: str, **fields: str) -> str:
    page.goto("/keys")
    page.fill("#name", name)
    for field, value in fields.items():
        page.fill(f"#{field}", value)
    page.click("form[action='/keys'] button[type=submit]")
    return page.get_by_test_id("new-key").inner_text().strip()


def test_customer_story(console, new_page):
    page = new_page()
    page.goto("/")  # the public front page, then the sign-up form it leads to
    expect(page.locator("h1")).to_have_text("One API key for every model")
    page.get_by_role("link", name="Create an account").click()
    page.fill("#email", "ada@example.com")
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("form[action='/signup'] button[type=submit]")
    expect(page.get_by_role("status")).to_have_text("Welcome! Your account is ready.")
    expect(page.get_by_test_id("balance")).to_have_text("$0")

    console.write(lambda c: billing.add_credits(c, "ada@example.com", usd_to_nanos("12.345"), note="top-up"))
    page.reload()
    expect(page.get_by_test_id("balance")).to_have_text("$12.345")

    # Log out and back in.
    page.click("text=Log out")
    expect(page).to_have_url(f"{console.server.url}/login")
    page.goto("/billing")
    expect(page).to_have_url(f"{console.server.url}/login?next=%2Fbilling")
    log_in(page, "ada@example.com")
    page.goto("/")
    expect(page.get_by_test_id("balance")).to_have_text("$12.345")

    # A key: shown once in full, then only its prefix.
    key = create_key(page, "laptop", limit="5", models="openai/*", expires="2099-12-31")
    assert key.startswith("th-") and len(key) > 40
    row = page.locator("tr", has_text="laptop")
    expect(row).to_contain_text("$5")
    expect(row).to_contain_text("openai/*")
    expect(row).to_contain_text("2099-12-31")
    expect(row).to_contain_text("Active")
    assert api_status(console, key) == 200

    page.reload()  # the page answered a POST: reloading must neither post again nor show the key
    assert key not in page.content()
    expect(page.locator("tr", has_text="laptop")).to_have_count(1)
    page.goto("/keys")
    assert key not in page.content()
    expect(page.locator("tr", has_text="laptop").locator("code")).to_have_text(key[:9] + "…")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="laptop").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("The key was revoked.")
    expect(page.locator("tr", has_text="laptop")).to_contain_text("Revoked")
    assert api_status(console, key) == 401

    # Bad input is explained, in place.
    page.fill("#limit", "lots")
    page.click("form[action='/keys'] button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Enter the limit as a USD amount, like 5 or 12.50.")


def test_language_switch_is_remembered(console, new_page):
    make_user(console, "lin@example.com")
    page = new_page()
    page.goto("/login")
    expect(page.locator("h1")).to_have_text("Log in")
    page.click("text=中文")
    expect(page).to_have_url(f"{console.server.url}/login")
    expect(page.locator("h1")).to_have_text("登录")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    log_in(page, "lin@example.com")
    expect(page.locator("h1")).to_have_text("概览")
    page.click("text=API 密钥")
    expect(page.locator("h1")).to_have_text("API 密钥")
    page.click("text=English")
    expect(page).to_have_url(f"{console.server.url}/keys")
    expect(page.locator("h1")).to_have_text("API keys")
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Dashboard")


def test_language_follows_the_browser_until_chosen(console, new_page):
    page = new_page(locale="zh-CN")
    page.goto("/signup")
    expect(page.locator("h1")).to_have_text("注册")
    page.click("text=English")
    page.goto("/login")
    expect(page.locator("h1")).to_have_text("Log in")


def test_csrf_refused(console, new_page):
    make_user(console, "eve@example.com")
    page = new_page()
    log_in(page, "eve@example.com")
    page.goto("/keys")
    token = csrf_of(page)
    post = page.request.post
    for form in ({"name": "no-token"}, {"name": "bad-token", "csrf": "0" * 64}, {"name": "other", "csrf": token[:-1] + "x"}):
        response = post("/keys", form=form)
        assert response.status == 403
        assert "This form has expired" in response.text()
    cross = post("/keys", form={"name": "cross", "csrf": token}, headers={"Origin": "https://evil.example"})
    assert cross.status == 403
    # A token of another session does not fit this one.
    other = new_page()
    other.goto("/login")
    assert post("/keys", form={"name": "foreign", "csrf": csrf_of(other)}).status == 403
    # Logging out needs the token too.
    assert post("/logout", form={}).status == 403
    page.goto("/keys")
    expect(page.locator("h1")).to_have_text("API keys")  # still signed in
    # The real form works, and nothing above made a key.
    ok = post("/keys", form={"name": "fine", "csrf": token}, headers={"Origin": console.server.url})
    assert ok.status == 200
    page.goto("/keys")
    expect(page.locator("tbody tr")).to_have_count(1)
    # A request without the session cookie at all.
    request = urllib.request.Request(f"{console.server.url}/keys", data=f"name=x&csrf={token}".encode(), method="POST")
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403


def test_login_brute_force_is_limited(console, new_page):
    make_user(console, "bob@example.com")
    page = new_page()
    page.goto("/login")
    for _ in range(5):
        page.fill("#email", "bob@example.com")
        page.fill("#password", "wrong-password")
        page.click("form[action='/login'] button[type=submit]")
        expect(page.get_by_role("alert")).to_have_text("The email or password is not right.")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
        page.fill("#email", "bob@example.com")
        page.fill("#password", PASSWORD)  # even the right one, now
        page.click("form[action='/login'] button[type=submit]")
    assert answer.value.status == 429
    assert 0 < int(answer.value.headers["retry-after"]) <= 15 * 60
    expect(page.locator("h1")).to_have_text("Too many attempts")
    # An unknown email gets the same answer as a wrong password.
    page.goto("/login")
    page.fill("#email", "nobody@example.com")
    page.fill("#password", "wrong-password")
    page.click("form[action='/login'] button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("The email or password is not right.")


def test_logout_and_sign_out_everywhere_end_copied_sessions(console, new_page):
    make_user(console, "copy@example.com")
    page = new_page()
    log_in(page, "copy@example.com")
    thief = new_page()
    thief.context.add_cookies(page.context.cookies())  # the cookie, copied before logout
    thief.goto("/keys")
    expect(thief.locator("h1")).to_have_text("API keys")
    page.click("form.logout button[type=submit]")
    expect(page).to_have_url(f"{console.server.url}/login")
    thief.goto("/keys")
    expect(thief).to_have_url(f"{console.server.url}/login?next=%2Fkeys")
    # Two browsers again; "Sign out everywhere" in one ends both.
    log_in(page, "copy@example.com")
    other = new_page(locale="zh-CN")
    log_in(other, "copy@example.com")
    other.goto("/account/password")
    expect(other.get_by_role("heading", name="已登录的浏览器")).to_be_visible()
    page.goto("/account/password")
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_role("status")).to_have_text("You were signed out in every browser.")
    expect(page.locator("h1")).to_have_text("Log in")
    other.goto("/keys")
    expect(other.locator("h1")).to_have_text("登录")


def test_user_text_is_escaped(console, new_page):
    fired: list[str] = []
    make_user(console, "xss@example.com")
    page = new_page()
    page.on("dialog", lambda dialog: (fired.append(dialog.message), dialog.dismiss()))
    log_in(page, "xss@example.com")
    names = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>']
    for name in names:
        create_key(page, name)
        expect(page.get_by_role("heading", level=2).first).to_have_text(f"Key “{name}” created")
    page.goto("/keys")
    expect(page.locator("td.key-name")).to_have_text(names)
    expect(page.locator("img")).to_have_count(0)
    assert fired == []


def test_customers_see_only_their_own_keys(console, new_page):
    make_user(console, "alice@example.com")
    make_user(console, "mallory@example.com")
    alice = new_page()
    log_in(alice, "alice@example.com")
    alice_key = create_key(alice, "alice-secret-key")
    key_id = alice.locator("tr", has_text="alice-secret-key").get_attribute("data-key-id")

    mallory = new_page()
    log_in(mallory, "mallory@example.com")
    mallory.goto("/keys")
    expect(mallory.locator("main")).not_to_contain_text("alice-secret-key")
    response = mallory.request.post(f"/keys/{key_id}/revoke", form={"csrf": csrf_of(mallory)})
    assert response.status == 404
    assert api_status(console, alice_key) == 200
    assert mallory.request.post("/keys/not-a-number/revoke", form={"csrf": csrf_of(mallory)}).status == 404
    # Not an admin: no admin page.
    assert mallory.request.get("/admin").status == 403


def test_password_change_ends_other_sessions(console, new_page):
    make_user(console, "pat@example.com")
    first, second = new_page(), new_page()
    log_in(first, "pat@example.com")
    log_in(second, "pat@example.com")
    first.goto("/account/password")
    first.fill("#current", PASSWORD)
    first.fill("#password", "a-brand-new-password")
    first.fill("#confirm", "a-brand-new-password")
    first.click("form[action='/account/password'] button[type=submit]")
    expect(first.get_by_role("status")).to_contain_text("Your password was changed")
    second.goto("/keys")
    expect(second).to_have_url(f"{console.server.url}/login?next=%2Fkeys")
    first.goto("/keys")
    expect(first.locator("h1")).to_have_text("API keys")
    second.fill("#email", "pat@example.com")
    second.fill("#password", PASSWORD)  # the old one
    second.click("form[action='/login'] button[type=submit]")
    expect(second.get_by_role("alert")).to_have_text("The email or password is not right.")
    second.fill("#password", "a-brand-new-password")
    second.click("form[action='/login'] button[type=submit]")
    expect(second.locator("h1")).to_have_text("API keys")  # back where it was going


def test_admin_sees_admin_link(console, new_page):
    make_user(console, "root@example.com", admin=True)
    page = new_page()
    log_in(page, "root@example.com")
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Overview").click()
    expect(page).to_have_url(f"{console.server.url}/admin")
    expect(page.locator("h1")).to_have_text("Overview")


def test_phone_width(console, new_page):
    make_user(console, "mo@example.com")
    page = new_page(viewport={"width": 375, "height": 700}, is_mobile=True, has_touch=True)
    log_in(page, "mo@example.com")
    create_key(page, "phone-key", limit="1.5")
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Dashboard", "API keys", "Models", "Docs", "Account"):
        link = nav.get_by_role("link", name=label)
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375 and box["height"] >= 24
    nav.get_by_role("link", name="API keys").click()
    expect(page.locator("h1")).to_have_text("API keys")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.keyboard.press("Tab")  # the skip link comes first and shows itself when focused
    expect(page.locator(".skip-link")).to_be_focused()


def test_screenshots(console, new_page, tmp_path):
    """Screenshots of the main pages in both languages (into docs/screenshots with TOKENHUB_SCREENSHOTS=1)."""
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    make_user(console, "demo@example.com")
    console.write(lambda c: billing.add_credits(c, "demo@example.com", usd_to_nanos("25.5"), note="top-up"))
    for lang, other in (("en", "中文"), ("zh", "English")):
        page = new_page(locale="zh-CN" if lang == "zh" else "en-US", viewport={"width": 1000, "height": 640})
        page.goto("/login")
        page.screenshot(path=str(target / f"login-{lang}.png"))
        log_in(page, "demo@example.com")
        page.screenshot(path=str(target / f"dashboard-{lang}.png"))
        create_key(page, "laptop" if lang == "en" else "笔记本", limit="10", models="openai/*")
        page.screenshot(path=str(target / f"keys-{lang}.png"), full_page=True)
        expect(page.get_by_role("link", name=other)).to_be_visible()
    phone = new_page(viewport={"width": 375, "height": 700}, is_mobile=True)
    log_in(phone, "demo@example.com")
    phone.goto("/keys")
    phone.screenshot(path=str(target / "keys-phone-en.png"), full_page=True)
    for png in target.glob("*.png"):
        assert png.stat().st_size < 400_000
