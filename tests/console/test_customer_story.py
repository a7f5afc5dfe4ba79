"""A customer's whole story in the browser, that customers never see each other's usage, and that key names stay text."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import UPSTREAM_KEY
from tests.console.conftest import PASSWORD, log_in, make_user
from tests.console.test_billing import WEBHOOK_SECRET, paid_event, post_webhook, sign
from tests.support.scenarios import MODEL, cost_nanos, priced_model
from tokenhub.accounts import service as accounts
from tokenhub.billing import codes
from tokenhub.billing import service as billing
from tokenhub.money import format_usd, usd_to_nanos

VIDEO_MODEL = "bytedance/doubao-seedance-2.0"


def usd(nanos: int) -> str:
    return f"${format_usd(nanos)}"


def create_key(page: Page, name: str) -> str:
    page.goto("/keys")
    page.fill("#name", name)
    page.click("form[action='/keys'] button[type=submit]")
    return page.get_by_test_id("new-key").inner_text().strip()


def chat(client: Any, content: str) -> tuple[str, int]:
    """One chat request through the official SDK: the gateway's request id and its exact cost in nanos."""
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": content}])
    usage = raw.parse().usage
    return raw.headers["x-request-id"], cost_nanos(usage.prompt_tokens, usage.completion_tokens)


def usage_row(page: Page, request_id: str) -> Any:
    return page.locator(f"[data-testid=requests] tr[data-request-id='{request_id}']")


def test_customer_story(make_gateway, sqlite_url, upstream_url, open_page):
    gw = make_gateway(sqlite_url, stripe_webhook_secret=WEBHOOK_SECRET, stripe_secret_key="sk_test_x")
    priced_model(gw, upstream_url)

    # Sign up in the browser, then the operator credits the new account.
    page = open_page(gw)
    page.goto("/signup")
    page.fill("#email", "grace@example.com")
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("form[action='/signup'] button[type=submit]")
    expect(page.get_by_test_id("balance")).to_have_text("$0")
    expect(page.get_by_test_id("no-spend")).to_be_visible()
    gw.write(lambda c: billing.add_credits(c, "grace@example.com", usd_to_nanos("10"), note="welcome"))

    # A key made in the browser, used with the official SDK.
    key = create_key(page, "notebook")
    request_id, cost = chat(gw.client(key), "What is a token?")
    assert cost > 0
    balance = usd_to_nanos("10") - cost
    assert gw.credits("grace@example.com")["balance_nanos"] == balance  # also waits for the settlement

    # The usage page shows that request at its exact cost; the dashboard's balance dropped by exactly that.
    page.goto("/usage")
    row = usage_row(page, request_id)
    expect(row).to_contain_text(MODEL)
    expect(row).to_contain_text("notebook")
    expect(row.locator(".cost")).to_have_text(usd(cost))
    expect(row).to_contain_text("OK")
    page.goto("/")
    expect(page.get_by_test_id("balance")).to_have_text(usd(balance))
    expect(page.get_by_test_id("period-spend")).to_have_text(usd(cost))
    expect(page.get_by_test_id("period-requests")).to_have_text("1")
    expect(page.get_by_test_id("recent-requests").locator(f"tr[data-request-id='{request_id}'] .cost")).to_have_text(usd(cost))
    expect(page.get_by_test_id("spend-chart").locator("rect[data-day]")).to_have_count(1)
    page.goto("/keys")
    expect(page.locator("tr", has_text="notebook").get_by_test_id("key-requests")).to_have_text("1")
    expect(page.locator("tr", has_text="notebook").get_by_test_id("key-spend")).to_have_text(usd(cost))

    # A card top-up: Stripe's signed webhook credits it; the billing page shows it.
    user_id = gw.read(lambda c: accounts.get_user(c, "grace@example.com")).id
    payload = paid_event("evt_story", "cs_story", user_id, 2500)
    assert post_webhook(gw.server.url, payload, sign(payload)) == (200, {"received": True})
    balance += usd_to_nanos("25")
    page.goto("/billing?checkout=success&session_id=cs_story")
    expect(page.get_by_test_id("checkout-status")).to_contain_text("$25")
    expect(page.get_by_test_id("balance")).to_have_text(usd(balance))
    ledger = page.get_by_test_id("ledger").locator("tbody tr")
    expect(ledger.first.locator("td").nth(1)).to_have_text("Top-up")
    expect(ledger.first.locator("td").nth(2)).to_have_text("+$25")
    expect(ledger.first.locator(".running")).to_have_text(usd(balance))

    # A redemption code.
    batch = gw.write(lambda c: codes.create_batch(c, usd_to_nanos("3.5"), 1, label="story"))
    page.fill("#code", batch[0])
    page.click("form[action='/billing/redeem'] button[type=submit]")
    expect(page.get_by_test_id("redeemed")).to_contain_text("$3.5")
    balance += usd_to_nanos("3.5")
    expect(page.get_by_test_id("balance")).to_have_text(usd(balance))
    page.goto("/")
    expect(page.get_by_test_id("balance")).to_have_text(usd(balance))
    assert gw.ledger_report().ok


def api(gw: Any, method: str, path: str, key: str, body: object | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{gw.base_url}{path}", method=method, data=data,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def finished_video(gw: Any, key: str) -> dict:
    status, task = api(gw, "POST", "/videos/generations", key, {"model": VIDEO_MODEL, "prompt": "a cat surfing", "duration": 5})
    assert status == 200, task
    deadline = time.monotonic() + 15
    while task["status"] not in ("succeeded", "failed", "cancelled", "expired"):
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
        status, task = api(gw, "GET", f"/videos/generations/{task['id']}", key)
    assert task["status"] == "succeeded", task
    return task


def test_customers_never_see_each_other(make_gateway, sqlite_url, upstream_url, media_servers, open_page):
    gw = make_gateway(sqlite_url, task_poll_base=0.02)
    priced_model(gw, upstream_url)
    gw.channel("ark", media_servers["ark"].url + "/api/v3", api_key=UPSTREAM_KEY, name="ark")
    for email in ("first@example.com", "second@example.com"):
        make_user(gw, email)
        gw.write(lambda c, email=email: billing.add_credits(c, email, usd_to_nanos("10")))
    key = gw.key("first@example.com", name="first-secret-key")
    gw.key("second@example.com", name="mine")
    first_key_id = gw.read(lambda c: accounts.list_keys(c, "first@example.com"))[0]["id"]
    request_id, cost = chat(gw.client(key), "private question")
    task = finished_video(gw, key)
    gw.flush()

    # The first customer sees the request and the task, with its cost and a link to the video.
    first = open_page(gw)
    log_in(first, "first@example.com")
    first.goto("/usage")
    expect(usage_row(first, request_id).locator(".cost")).to_have_text(usd(cost))
    task_row = first.locator(f"[data-testid=tasks] tr[data-task-id='{task['id']}']")
    expect(task_row).to_contain_text("Succeeded")
    expect(task_row).to_contain_text(usd(usd_to_nanos(str(task["usage"]["cost"]))))
    expect(task_row.get_by_role("link", name="Open video")).to_have_attribute("href", task["data"][0]["video_url"])

    # The second sees none of it, whatever the query says.
    second = open_page(gw)
    log_in(second, "second@example.com")
    second.goto("/usage")
    expect(second.get_by_test_id("no-requests")).to_be_visible()
    expect(second.locator("#tasks")).to_have_count(0)
    for query, status in [(f"?key={first_key_id}", 404), (f"?before={request_id}", 400), (f"?tasks_before={task['id']}", 400)]:
        response = second.goto(f"/usage{query}")
        assert response is not None and response.status == status, query
        expect(second.get_by_test_id("usage-error")).to_be_visible()
    assert second.request.get(f"/usage.csv?key={first_key_id}").status == 404
    exported = second.request.get("/usage.csv")
    assert exported.status == 200
    lines = exported.body().decode("utf-8-sig").splitlines()
    assert len(lines) == 1 and lines[0].startswith("time_utc,request_id")  # the header only
    second.goto(f"/usage?model={MODEL}")
    expect(second.get_by_test_id("no-requests")).to_be_visible()
    for path in ("/usage", "/", "/keys", f"/usage?model={VIDEO_MODEL}"):
        second.goto(path)
        text = second.content()
        assert request_id not in text and task["id"] not in text and "first-secret-key" not in text, path
    second.goto("/")
    expect(second.get_by_test_id("period-requests")).to_have_text("0")
    expect(second.get_by_test_id("no-spend")).to_be_visible()


def test_key_names_render_as_text(console, new_page, upstream_url):
    priced_model(console, upstream_url)
    make_user(console, "mallory@example.com")
    console.write(lambda c: billing.add_credits(c, "mallory@example.com", usd_to_nanos("1")))
    names = ["<script>window.pwned = 1</script>", '<img src=x onerror="window.pwned = 2">']
    ids = [chat(console.client(console.key("mallory@example.com", name=name)), "hi")[0] for name in names]
    console.flush()

    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, "mallory@example.com")
    for path, table in (("/usage", "requests"), ("/", "recent-requests"), ("/keys", None)):
        page.goto(path)
        for request_id, name in zip(ids, names):
            cell = page.locator(f"[data-testid={table}] tr[data-request-id='{request_id}'] .key-name") if table else (
                page.locator(".key-name", has_text=name))
            expect(cell).to_have_text(name)
        assert page.locator("main img, main script").count() == 0, path
        assert page.evaluate("window.pwned") is None, path
    page.goto("/usage")
    expect(page.locator("#f-key option").nth(2)).to_contain_text(names[1])  # the key filter lists names as text
    page.select_option("#f-key", index=2)
    page.click("form[data-testid=filters] button[type=submit]")
    expect(page.locator("[data-testid=requests] tbody tr")).to_have_count(1)
    expect(page.locator("[data-testid=requests] .key-name")).to_have_text(names[1])
    assert page.evaluate("window.pwned") is None and dialogs == []
