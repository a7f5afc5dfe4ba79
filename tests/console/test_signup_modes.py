"""Who may sign up (TOKENHUB_SIGNUP=open|invite|closed), single-use invite links (the Invites page and
``tokenhub invite create``), the sign-up bonus as a ledger entry, and the per-address sign-up limit."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console.conftest import PASSWORD, csrf_of, log_in, make_user, run_cli
from tokenhub.accounts import service as accounts
from tokenhub.billing import service as billing
from tokenhub.money import usd_to_nanos


def sign_up(page, email: str, path: str = "/signup") -> None:
    page.goto(path)
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("form[action='/signup'] button[type=submit]")


@pytest.mark.parametrize("locale, message", [("en-US", "Sign-up is closed on this server."), ("zh-CN", "本服务器已关闭注册。")])
def test_closed_sign_up_refuses_the_form_and_the_post(make_gateway, sqlite_url, open_page, locale, message):
    gateway = make_gateway(sqlite_url, signup="closed")
    page = open_page(gateway, locale=locale)
    response = page.goto("/signup")
    assert response.status == 403
    expect(page.locator("main")).to_contain_text(message)
    page.goto("/login")
    posted = page.request.post("/signup", form={"csrf": csrf_of(page), "email": "x@example.com", "password": PASSWORD,
                                                "confirm": PASSWORD})  # fmt: skip
    assert posted.status == 403
    assert gateway.read(lambda c: accounts.list_users(c)) == []
    page.goto("/")
    expect(page.locator("[data-testid=quick-start-steps] > li").first.locator("a[href='/signup']")).to_have_count(0)


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_an_invite_link_opens_sign_up_once(make_gateway, sqlite_url, open_page, locale):
    gateway = make_gateway(sqlite_url, signup="invite")
    make_user(gateway, "boss@example.com", admin=True)
    admin = open_page(gateway, locale=locale)
    log_in(admin, "boss@example.com")
    admin.goto("/admin/invites")
    expect(admin.get_by_test_id("signup-mode")).to_contain_text("TOKENHUB_SIGNUP=invite")
    admin.fill("#note", "for Ada")
    admin.click("form[action='/admin/invites'] button[type=submit]")
    link = admin.get_by_test_id("new-invite").inner_text().strip()
    assert link.startswith(f"{gateway.server.url}/signup?invite=")

    visitor = open_page(gateway, locale=locale)
    assert visitor.goto("/signup").status == 403  # no invite: the form is not offered
    sign_up(visitor, "ada@example.com", link.removeprefix(gateway.server.url))
    visitor.wait_for_url(f"{gateway.server.url}/?done=welcome")
    admin.goto("/admin/invites")
    row = admin.locator("tr[data-state]").first
    expect(row).to_have_attribute("data-state", "used")
    expect(row).to_contain_text("ada@example.com")
    expect(row).to_contain_text("for Ada")

    again = open_page(gateway, locale=locale)
    assert again.goto(link.removeprefix(gateway.server.url)).status == 403  # spent
    # A valid-looking POST with the spent invite is refused too, and makes no account.
    again.goto("/login")
    posted = again.request.post("/signup", form={"csrf": csrf_of(again), "email": "eve@example.com", "password": PASSWORD,
                                                 "confirm": PASSWORD, "invite": link.split("invite=")[1]})  # fmt: skip
    assert posted.status == 403
    assert [u["email"] for u in gateway.read(lambda c: accounts.list_users(c))] == ["boss@example.com", "ada@example.com"]


def test_a_withdrawn_invite_and_one_from_the_cli(make_gateway, sqlite_url, open_page):
    gateway = make_gateway(sqlite_url, signup="invite")
    make_user(gateway, "boss@example.com", admin=True)
    admin = open_page(gateway)
    admin.on("dialog", lambda d: d.accept())
    log_in(admin, "boss@example.com")
    admin.goto("/admin/invites")
    admin.click("form[action='/admin/invites'] button[type=submit]")
    link = admin.get_by_test_id("new-invite").inner_text().strip()
    admin.goto("/admin/invites")
    admin.get_by_role("button", name="Withdraw").click()
    expect(admin.get_by_role("status")).to_have_text("The invite was withdrawn.")
    expect(admin.locator("tr[data-state]")).to_have_count(0)
    assert open_page(gateway).goto(link.removeprefix(gateway.server.url)).status == 403

    # The operator's CLI, against the same database, with the public address in the link.
    public = {"TOKENHUB_PUBLIC_URL": "https://console.example.com"}
    cli_link = run_cli(gateway, "invite", "create", "--note", "from the cli", **public).strip()
    assert cli_link.startswith("https://console.example.com/signup?invite=")
    visitor = open_page(gateway)
    sign_up(visitor, "cli@example.com", cli_link.removeprefix("https://console.example.com"))
    visitor.wait_for_url(f"{gateway.server.url}/?done=welcome")
    listed = run_cli(gateway, "invite", "list", **public)
    assert "used" in listed and "cli@example.com" in listed and "from the cli" in listed


@pytest.mark.parametrize("locale, kind", [("en-US", "Sign-up bonus"), ("zh-CN", "注册赠送")])
def test_the_sign_up_bonus_is_a_ledger_entry(make_gateway, sqlite_url, open_page, locale, kind):
    gateway = make_gateway(sqlite_url, signup_bonus_nanos=usd_to_nanos("1.25"))
    page = open_page(gateway, locale=locale)
    sign_up(page, "new@example.com")
    page.wait_for_url(f"{gateway.server.url}/?done=welcome")
    page.goto("/billing")
    expect(page.get_by_test_id("ledger")).to_contain_text(kind)
    expect(page.get_by_test_id("ledger")).to_contain_text("$1.25")
    user = gateway.read(lambda c: accounts.get_user(c, "new@example.com"))
    assert user.balance == usd_to_nanos("1.25")
    assert gateway.read(lambda c: billing.check_ledger(c)).ok
    # A failed sign-up (the passwords differ) gives nothing.
    other = open_page(gateway, locale=locale)
    other.goto("/signup")
    other.fill("#email", "nope@example.com")
    other.fill("#password", PASSWORD)
    other.fill("#confirm", PASSWORD + "x")
    other.click("form[action='/signup'] button[type=submit]")
    expect(other.get_by_role("alert")).to_be_visible()
    assert len(gateway.read(lambda c: accounts.list_users(c))) == 1


@pytest.mark.parametrize("locale, words", [("en-US", "Too many attempts"), ("zh-CN", "尝试次数过多")])
def test_sign_ups_per_address_are_limited(console, new_page, locale, words):
    page = new_page(locale=locale)
    for n in range(5):
        page.context.clear_cookies()
        sign_up(page, f"farm{n}@example.com")
        page.wait_for_url(f"{console.server.url}/?done=welcome")
    page.context.clear_cookies()
    page.goto("/signup")
    page.fill("#email", "farm5@example.com")
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/signup") and r.request.method == "POST") as answer:
        page.click("form[action='/signup'] button[type=submit]")
    assert answer.value.status == 429 and int(answer.value.headers["retry-after"]) > 0
    expect(page.locator("main")).to_contain_text(words)
    assert len(console.read(lambda c: accounts.list_users(c))) == 5
