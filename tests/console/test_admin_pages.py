"""The operator pages in a real browser: users (credits, disable, admin rights), models, phones, screenshots."""

from __future__ import annotations

import os
import random
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import insert

from tests.conftest import UPSTREAM_KEY
from tests.console.conftest import PASSWORD, csrf_of, log_in, make_user
from tokenhub.accounts import service as accounts
from tokenhub.billing import service as billing
from tokenhub.catalog import service as catalog_service
from tokenhub.channels import service as channels_service
from tokenhub.money import usd_to_nanos
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import requests

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHIPPED = "deepseek/deepseek-v4-pro"


def api_status(console, key: str) -> int:
    request = urllib.request.Request(f"{console.base_url}/key", headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def adjust(page: Page, amount: str, note: str = "") -> None:
    page.fill("#amount", amount)
    page.fill("#note", note)
    page.click("form[action$='/credits'] button[type=submit]")


def test_user_management(console, new_page):
    boss = make_user(console, "boss@example.com", admin=True)
    cust = make_user(console, "cust@example.com")
    key = console.key("cust@example.com")
    page = new_page()
    page.on("dialog", lambda d: d.accept())
    log_in(page, "boss@example.com")

    page.goto("/admin/users")
    expect(page.get_by_test_id("users").locator("tbody tr")).to_have_count(2)
    page.fill("#q", "CUST")
    page.click("form[role=search] button")
    rows = page.get_by_test_id("users").locator("tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("link", name="cust@example.com").click()
    expect(page).to_have_url(f"{console.server.url}/admin/users/{cust['id']}")
    expect(page.get_by_test_id("balance")).to_have_text("$0")
    expect(page.get_by_test_id("user-keys")).to_contain_text("default")

    # Credits: a ledger entry with the note; debits never below zero; bad amounts explained.
    adjust(page, "12.5", "invoice 42")
    expect(page.get_by_role("status")).to_have_text("The adjustment was recorded in the ledger.")
    expect(page.get_by_test_id("balance")).to_have_text("$12.5")
    first = page.get_by_test_id("user-ledger").locator("tbody tr").first
    expect(first).to_contain_text("Adjustment")
    expect(first).to_contain_text("+$12.5")
    expect(first).to_contain_text("invoice 42")
    adjust(page, "-2.5", "refund")
    expect(page.get_by_test_id("balance")).to_have_text("$10")
    adjust(page, "-10.01")
    expect(page.get_by_role("alert")).to_have_text("That debit would take the balance below zero.")
    expect(page.locator("#amount")).to_have_value("-10.01")
    adjust(page, "lots")
    expect(page.get_by_role("alert")).to_have_text("Enter a non-zero USD amount, like 5 or -2.50.")
    adjust(page, "0")
    expect(page.get_by_role("alert")).to_have_text("Enter a non-zero USD amount, like 5 or -2.50.")
    assert console.credits("cust@example.com")["balance_nanos"] == usd_to_nanos("10")
    assert console.ledger_report().ok

    # Disable: the key stops at once and the user's session ends; enable brings both back.
    cust_page = new_page()
    log_in(cust_page, "cust@example.com")
    assert api_status(console, key) == 200
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_have_text("The user was disabled; their keys no longer work.")
    expect(page.get_by_test_id("user-status")).to_have_text("Disabled")
    assert api_status(console, key) == 401
    cust_page.goto("/keys")
    expect(cust_page.locator("h1")).to_have_text("Log in")
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_test_id("user-status")).to_have_text("Active")
    assert api_status(console, key) == 200

    # Admin rights: granted (step-up: the password again), then taken back.
    page.fill("#make-admin-confirm-password", PASSWORD)
    page.get_by_role("button", name="Make admin").click()
    expect(page.get_by_role("status")).to_have_text("The user is now an admin.")
    log_in(cust_page, "cust@example.com")
    cust_page.goto("/admin/users")
    expect(cust_page.locator("h1")).to_have_text("Users")
    page.get_by_role("button", name="Remove admin").click()
    expect(page.get_by_role("status")).to_have_text("The user is no longer an admin.")
    assert cust_page.goto("/admin/users").status == 403

    # An admin's own page offers no way to lock themselves out, and a forged POST is refused in words.
    page.goto(f"/admin/users/{boss['id']}")
    expect(page.get_by_role("button", name="Disable")).to_have_count(0)
    expect(page.get_by_role("button", name="Remove admin")).to_have_count(0)
    for action in ("disable", "remove-admin"):
        response = page.request.post(f"/admin/users/{boss['id']}/{action}", form={"csrf": csrf_of(page)})
        assert response.status == 400
        assert "You cannot lock yourself out" in response.text()
    page.reload()
    expect(page.get_by_test_id("user-status")).to_have_text("Active")

    # Unknown users and actions are plain 404 pages.
    assert page.goto("/admin/users/99999").status == 404
    assert page.goto("/admin/users/abc").status == 404
    assert page.request.post(f"/admin/users/{cust['id']}/explode", form={"csrf": csrf_of(page)}).status == 404


def test_admins_manage_each_other(console, new_page):
    """From the console an admin can always keep themselves: the last-admin rule is the service's (tests/admin)."""
    first = make_user(console, "first@example.com", admin=True)
    make_user(console, "second@example.com", admin=True)
    first_page = new_page()
    log_in(first_page, "first@example.com")
    page = new_page()
    page.on("dialog", lambda d: d.accept())
    log_in(page, "second@example.com")
    page.goto(f"/admin/users/{first['id']}")
    page.get_by_role("button", name="Remove admin").click()
    expect(page.get_by_role("status")).to_have_text("The user is no longer an admin.")
    assert first_page.goto("/admin").status == 403
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_test_id("user-status")).to_have_text("Disabled")
    first_page.goto("/keys")
    expect(first_page.locator("h1")).to_have_text("Log in")


def test_models_page(console, new_page, upstream_url):
    make_user(console, "boss@example.com", admin=True)
    console.channel("openai-compatible", upstream_url, models=[SHIPPED], name="fake")
    page = new_page()
    log_in(page, "boss@example.com")
    page.goto("/admin/models")
    row = page.locator(f"tr[data-model='{SHIPPED}']")
    expect(row.get_by_test_id("prices")).to_contain_text("in $1.32")
    expect(row.get_by_test_id("prices")).to_contain_text("out $3.96")
    expect(row.get_by_test_id("serving")).to_have_text("fake")
    expect(page.locator("tr[data-model='openai/gpt-4.1'] [data-testid=serving]")).to_have_text("No channel")

    # filter by kind; disable from the list; the public catalog follows
    page.select_option("#kind", "video")
    page.click("form[role=search] button")
    expect(page.locator(f"tr[data-model='{SHIPPED}']")).to_have_count(0)
    page.goto("/admin/models?q=deepseek-v4-pro")
    page.locator(f"tr[data-model='{SHIPPED}']").get_by_role("button", name=f"Disable {SHIPPED}").click()
    expect(page.get_by_role("status")).to_have_text("The model was disabled.")
    expect(page.locator(f"tr[data-model='{SHIPPED}']")).to_contain_text("Disabled")
    with urllib.request.urlopen(f"{console.base_url}/models", timeout=10) as response:
        assert SHIPPED not in response.read().decode()
    page.locator(f"tr[data-model='{SHIPPED}']").get_by_role("button", name=f"Enable {SHIPPED}").click()
    expect(page.locator(f"tr[data-model='{SHIPPED}']")).to_contain_text("Enabled")

    # bad prices are explained in place; nothing is saved
    page.goto(f"/admin/models/edit?id={SHIPPED}")
    page.fill("#input", "cheap")
    page.click("form[action='/admin/models/prices'] button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Enter prices as USD amounts per 1M tokens, like 3 or 0.25.")
    expect(page.locator("#input")).to_have_value("cheap")
    for field in ("#input", "#cached_input", "#output"):
        page.fill(field, "")
    page.click("form[action='/admin/models/prices'] button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Enter at least one price.")
    page.fill("#output", "-1")
    page.click("form[action='/admin/models/prices'] button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Enter prices as USD amounts per 1M tokens, like 3 or 0.25.")
    page.goto(f"/admin/models/edit?id={SHIPPED}")
    expect(page.get_by_test_id("price").first).to_have_text("in $1.32")
    assert page.goto("/admin/models/edit?id=no/such-model").status == 404
    assert page.goto("/admin/models/edit").status == 404
    # media prices are shown, not edited here
    page.goto("/admin/models/edit?id=bytedance/doubao-seedance-2.0")
    expect(page.locator("form[action='/admin/models/prices']")).to_have_count(0)


def test_channel_form_errors(console, new_page, upstream_url):
    make_user(console, "boss@example.com", admin=True)
    page = new_page()
    log_in(page, "boss@example.com")
    page.goto("/admin/channels")
    expect(page.get_by_text("No channels yet: add one below.")).to_be_visible()
    cases = [
        ({"base_url": "", "api_key": "k", "models": ""}, "Enter an http(s) URL"),
        ({"base_url": upstream_url, "api_key": "k", "models": "no/such-model"}, "Every model must be a catalog id"),
    ]
    for fields, message in cases:
        page.goto("/admin/channels")
        page.select_option("#provider", "openai-compatible")
        for name, value in fields.items():
            page.fill(f"#{name}", value)
        page.click("form[action='/admin/channels'] button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text(message)
    # what the browser's own checks would stop, the server refuses too
    for field, value, message in (("weight", "0", "The weight is a whole number from 1 to 1000."),
                                  ("priority", "x", "The priority is a whole number.")):
        form = {"csrf": csrf_of(page), "provider": "openai-compatible", "base_url": upstream_url, "api_key": "k", field: value}
        response = page.request.post("/admin/channels", form=form)
        assert response.status == 400 and message in response.text()
    assert page.goto("/admin/channels/424242").status == 404
    console.channel("deepseek", upstream_url, name="taken")
    page.goto("/admin/channels")
    page.select_option("#provider", "deepseek")
    page.fill("#name", "taken")
    page.fill("#api_key", "k")
    page.click("form[action='/admin/channels'] button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("A channel with this name exists already.")

    # timeouts: set on the edit page, reset by emptying the field, refused when not a number of seconds
    taken = console.read(lambda c: channels_service.get_channel(c, "taken"))
    page.goto(f"/admin/channels/{taken['id']}")
    page.fill("#idle_timeout", "45")
    page.fill("#first_byte_timeout", "20.5")
    page.locator(f"form[action='/admin/channels/{taken['id']}'] button[type=submit]").first.click()
    stored = console.read(lambda c: channels_service.get_channel(c, "taken"))
    assert (stored["idle_timeout"], stored["first_byte_timeout"], stored["connect_timeout"]) == (45.0, 20.5, None)
    route = next(c for c in console.gw.directory.channels() if c.name == "taken")
    assert (route.timeouts.idle, route.timeouts.first_byte, route.timeouts.connect) == (45.0, 20.5, 10.0)
    page.goto(f"/admin/channels/{taken['id']}")
    expect(page.locator("#idle_timeout")).to_have_value("45.0")
    form = {"csrf": csrf_of(page), "name": "taken", "base_url": upstream_url, "priority": "0", "weight": "1", "idle_timeout": "forever"}
    response = page.request.post(f"/admin/channels/{taken['id']}", form=form)
    assert response.status == 400 and "idle_timeout" in response.text()


def test_admin_pages_fit_a_phone(console, new_page, upstream_url):
    make_user(console, "boss@example.com", admin=True)
    make_user(console, "a-rather-long-customer-address@some-company.example.com")
    console.channel("openai-compatible", upstream_url, models=[SHIPPED], name="fake-openai-with-a-long-name")
    page = new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
    log_in(page, "boss@example.com")
    for path in ("/admin", "/admin/users", "/admin/users/2", "/admin/channels", "/admin/channels/1", "/admin/models",
                 f"/admin/models/edit?id={SHIPPED}"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)


# -- screenshots (into docs/screenshots with TOKENHUB_SCREENSHOTS=1) ------------------------------------


def traffic(console, upstream_url: str) -> None:
    """A few customers, two channels and a week of requests, some real and most written as history."""
    make_user(console, "boss@example.com", admin=True)
    console.channel("openai-compatible", upstream_url, models=[SHIPPED, "openai/gpt-4.1"], name="fake-openai")
    console.channel("deepseek", "http://127.0.0.1:9/v1", name="deepseek-backup", priority=-1)
    console.write(lambda c: catalog_service.set_model(c, SHIPPED, input_price=usd_to_nanos("1.75"), output_price=usd_to_nanos("5")))
    customers = ["ada@example.com", "lin@example.cn", "grace@example.org", "ken@example.jp"]
    for email in customers:
        make_user(console, email)
        console.write(lambda c, e=email: billing.add_credits(c, e, usd_to_nanos("50"), note="welcome credit"))
    for email in customers[:2]:
        client = console.client(console.key(email))
        for _ in range(2):
            client.chat.completions.create(model=SHIPPED, messages=[{"role": "user", "content": "hello"}])
    rng = random.Random(7)
    now = utc_now()

    async def history(conn) -> None:
        for n in range(140):
            age = timedelta(days=rng.randint(0, 6), hours=rng.randint(0, 20), minutes=rng.randint(0, 59))
            model = rng.choice([SHIPPED, SHIPPED, "openai/gpt-4.1"])
            prompt, completion = rng.randint(200, 6000), rng.randint(50, 2500)
            price_in, price_out = (1_320_000_000, 3_960_000_000) if model == SHIPPED else (2_000_000_000, 8_000_000_000)
            failed = rng.random() < 0.06
            cost = 0 if failed else (prompt * price_in * 13 // 10 + completion * price_out * 13 // 10) // 1_000_000
            await conn.execute(insert(requests).values(
                id=f"hist-{n}", user_id=2 + n % 4, key_id=1 + (n % 2), model=model, channel_id=1 if n % 5 else 2, endpoint="chat",
                stream=False, state="settled", status="upstream_error" if failed else "ok", http_status=502 if failed else 200,
                hold_nanos=0, cost_nanos=cost, prompt_tokens=0 if failed else prompt, completion_tokens=0 if failed else completion,
                latency_ms=rng.randint(300, 2400), error="The upstream provider answered 502: bad gateway" if failed else None,
                instance_id="history", created_at=now - age,
            ))

    console.write(history)


def test_admin_screenshots(console, new_page, upstream_url, tmp_path):
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    traffic(console, upstream_url)
    shots = {
        "en": [("/admin", "admin-overview-en.png"), ("/admin/channels", "admin-channels-en.png")],
        "zh": [("/admin/users/2", "admin-users-zh.png"), ("/admin/models?q=deepseek", "admin-models-zh.png")],
    }
    for lang, pages in shots.items():
        page = new_page(locale="zh-CN" if lang == "zh" else "en-US", viewport={"width": 1100, "height": 800})
        log_in(page, "boss@example.com")
        for path, name in pages:
            page.goto(path)
            if path == "/admin/channels":
                page.locator("tr[data-channel='fake-openai'] form[action$='/test'] button").click()
                expect(page.get_by_test_id("probe")).to_be_visible()
            page.screenshot(path=str(target / name), full_page=True)
            assert UPSTREAM_KEY not in page.content()
    for png in target.glob("admin-*.png"):
        assert png.stat().st_size < 600_000


def test_account_limits_on_the_user_page(console, new_page, upstream_url):
    make_user(console, "boss@example.com", admin=True)
    cust = make_user(console, "cust@example.com")
    page = new_page()
    log_in(page, "boss@example.com")
    page.goto(f"/admin/users/{cust['id']}")
    expect(page.locator("#limit-rpm")).to_have_value("")
    page.fill("#limit-rpm", "30")
    page.fill("#limit-daily_limit", "2.5")
    page.fill("#limit-limit", "100")
    page.click(f"form[action='/admin/users/{cust['id']}/limits'] button[type=submit]")
    expect(page.get_by_role("status")).to_have_text("The limits were saved and apply at once.")
    expect(page.locator("#limit-rpm")).to_have_value("30")
    expect(page.locator("#limit-daily_limit")).to_have_value("2.5")
    stored = console.read(lambda c: accounts.get_user(c, cust["id"]))
    assert (stored.rpm, stored.daily_limit_nanos, stored.limit_nanos, stored.tpm) == (30, 2_500_000_000, 100_000_000_000, None)

    page.fill("#limit-rpm", "")  # cleared: no limit
    page.fill("#limit-tpm", "lots")
    page.click(f"form[action='/admin/users/{cust['id']}/limits'] button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("tpm")
    expect(page.locator("#limit-tpm")).to_have_value("lots")  # the form comes back as typed
    assert console.read(lambda c: accounts.get_user(c, cust["id"])).rpm == 30  # nothing was saved
    page.fill("#limit-tpm", "")
    page.click(f"form[action='/admin/users/{cust['id']}/limits'] button[type=submit]")
    expect(page.get_by_role("status")).to_have_text("The limits were saved and apply at once.")
    assert console.read(lambda c: accounts.get_user(c, cust["id"])).rpm is None
