"""Billing in the console: the ledger with its running balance, redemption codes, Stripe top-ups and webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

from playwright.sync_api import Page, expect

from tests.console.conftest import PASSWORD, log_in, make_user
from tests.support.scenarios import MODEL, cost_nanos, priced_model
from tokenhub.billing import service as billing
from tokenhub.money import format_usd, usd_to_nanos

WEBHOOK_SECRET = "whsec_test"


def sign(payload: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """Stripe's scheme: ``t=<unix time>,v1=<HMAC-SHA256(secret, "<t>.<payload>")>``."""
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def paid_event(event_id: str, session_id: str, user_id: int, cents: int) -> bytes:
    session = {
        "id": session_id, "object": "checkout.session", "amount_total": cents, "currency": "usd", "payment_status": "paid",
        "payment_intent": "pi_" + session_id, "client_reference_id": str(user_id), "metadata": {"tokenhub_user_id": str(user_id)},
    }
    body = {"id": event_id, "object": "event", "type": "checkout.session.completed", "data": {"object": session}}
    return json.dumps(body, indent=2).encode()


def post_webhook(url: str, payload: bytes, signature: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    request = urllib.request.Request(f"{url}/api/stripe/webhook", data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def usd(nanos: int) -> str:
    return f"${format_usd(nanos)}"


def redeem(page: Page, code: str) -> None:
    page.fill("#code", code)
    page.click("form[action='/billing/redeem'] button[type=submit]")


def test_ledger_and_redemption_codes(console, new_page, upstream_url):
    priced_model(console, upstream_url)
    make_user(console, "boss@example.com", admin=True)
    customer = make_user(console, "cust@example.com")
    console.write(lambda c: billing.add_credits(c, customer["id"], usd_to_nanos("10"), note="welcome <b>credit</b>"))

    # A real chat call, charged to the customer.
    key = console.key("cust@example.com")
    reply = console.client(key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    cost = cost_nanos(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert cost > 0
    balance = usd_to_nanos("10") - cost
    assert console.credits("cust@example.com")["balance_nanos"] == balance  # flushes the ledger

    page = new_page()
    log_in(page, "cust@example.com")
    page.goto("/billing")
    expect(page.get_by_test_id("balance")).to_have_text(usd(balance))
    rows = page.get_by_test_id("ledger").locator("tbody tr")
    newest = rows.first
    expect(newest.locator("td").nth(1)).to_have_text("Charge")
    expect(newest.locator("td").nth(2)).to_have_text("-" + usd(cost))
    expect(newest.locator(".running")).to_have_text(usd(balance))
    oldest = rows.last
    expect(oldest.locator("td").nth(1)).to_have_text("Adjustment")
    expect(oldest.locator("td").nth(2)).to_have_text("+$10")
    expect(oldest.locator(".running")).to_have_text("$10")
    expect(oldest.locator("td").nth(4)).to_have_text("welcome <b>credit</b>")  # escaped, shown as typed
    # Every running balance is the one before it plus the entry's amount.
    entries = console.read(lambda c: billing.ledger_history(c, customer["id"], 50))
    for newer, older in zip(entries, entries[1:]):
        assert newer["balance_after_nanos"] == older["balance_after_nanos"] + newer["amount_nanos"]
    expect(rows).to_have_count(len(entries))

    # The operator creates codes; they are shown once.
    admin = new_page()
    log_in(admin, "boss@example.com")
    admin.goto("/admin/codes")
    admin.fill("#amount", "2.5")
    admin.fill("#count", "2")
    admin.fill("#label", "<i>launch</i>")
    admin.click("form[action='/admin/codes'] button[type=submit]")
    codes = admin.get_by_test_id("new-codes").inner_text().split()
    assert len(codes) == 2 and all(code.startswith("THC-") for code in codes)
    href = admin.get_by_test_id("download-csv").get_attribute("href") or ""
    assert href.startswith("data:text/csv") and all(code in urllib.request.unquote(href) for code in codes)
    batch_row = admin.get_by_test_id("batches").locator("tbody tr").first
    expect(batch_row).to_contain_text("<i>launch</i>")
    expect(batch_row).to_contain_text("0 of 2")
    admin.reload()
    assert codes[0] not in admin.content()

    # The customer redeems one: the balance rises by exactly its amount; a second try is refused.
    redeem(page, codes[0].lower())
    expect(page.get_by_test_id("redeemed")).to_have_text("The code was redeemed: $2.5 was added to your balance.")
    expect(page.get_by_test_id("balance")).to_have_text(usd(balance + usd_to_nanos("2.5")))
    expect(page.get_by_test_id("ledger").locator("tbody tr").first.locator("td").nth(1)).to_have_text("Code redeemed")
    redeem(page, codes[0])
    expect(page.get_by_test_id("redeem-error")).to_have_text(
        "This code is not valid: it may be mistyped, already used, expired or disabled."
    )
    redeem(page, "THC-2222-2222-2222-2222")  # unknown: the same answer
    expect(page.get_by_test_id("redeem-error")).to_have_text(
        "This code is not valid: it may be mistyped, already used, expired or disabled."
    )
    assert console.credits("cust@example.com")["balance_nanos"] == balance + usd_to_nanos("2.5")

    # The operator sees who redeemed which, then disables the rest of the batch.
    admin.goto("/admin/codes")
    admin.get_by_test_id("batches").locator("tbody tr").first.locator("a").click()
    table = admin.get_by_test_id("batch-codes")
    expect(table.locator("tr", has_text="cust@example.com")).to_have_count(1)
    expect(table).to_contain_text(codes[0][:8])
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_test_id("batches").locator("tbody tr").first.get_by_role("button", name="Disable").click()
    expect(admin.get_by_role("status")).to_have_text("The unused codes of the batch were disabled.")
    redeem(page, codes[1])
    expect(page.get_by_test_id("redeem-error")).to_be_visible()

    # Customers cannot reach the codes page.
    page.goto("/admin/codes")
    expect(page.locator("h1")).to_have_text("Not allowed")


def test_billing_explains_missing_stripe_and_webhook_refuses(console, new_page):
    make_user(console, "solo@example.com")
    page = new_page()
    log_in(page, "solo@example.com", PASSWORD)
    page.goto("/billing")
    missing = page.get_by_test_id("stripe-missing")
    expect(missing).to_contain_text("not configured Stripe")
    expect(missing).to_contain_text("TOKENHUB_STRIPE_SECRET_KEY")
    expect(missing).to_contain_text("TOKENHUB_STRIPE_WEBHOOK_SECRET")
    expect(page.locator("form[action='/billing/topup']")).to_have_count(0)

    payload = paid_event("evt_x", "cs_x", 1, 500)
    status, body = post_webhook(console.server.url, payload, sign(payload))
    assert status == 503 and body["error"]["code"] == "stripe_not_configured"


def test_stripe_webhook_credits_once(make_gateway, sqlite_url, browser):
    gw = make_gateway(sqlite_url, stripe_webhook_secret=WEBHOOK_SECRET, stripe_secret_key="sk_test_x")
    user = make_user(gw, "payer@example.com")
    payload = paid_event("evt_1", "cs_test_1", user["id"], 1234)

    for _ in range(2):  # Stripe delivers at least once
        status, body = post_webhook(gw.server.url, payload, sign(payload))
        assert (status, body) == (200, {"received": True})
    summary = gw.credits("payer@example.com")
    assert summary["balance_nanos"] == summary["total_credits_nanos"] == usd_to_nanos("12.34")

    status, body = post_webhook(gw.server.url, paid_event("evt_2", "cs_test_2", user["id"], 999), None)
    assert status == 400 and body["error"]["code"] == "invalid_signature"
    status, body = post_webhook(gw.server.url, payload, sign(payload, "whsec_wrong"))
    assert status == 400
    assert gw.credits("payer@example.com")["balance_nanos"] == usd_to_nanos("12.34")

    # The billing page: the top-up form, the payment's status after the checkout, the top-up in the ledger.
    context = browser.new_context(base_url=gw.server.url, locale="en-US")
    try:
        context.set_default_timeout(10_000)
        page = context.new_page()
        log_in(page, "payer@example.com")
        page.goto("/billing?checkout=success&session_id=cs_test_1")
        expect(page.get_by_test_id("checkout-status")).to_contain_text("Paid")
        expect(page.get_by_test_id("checkout-status")).to_contain_text("$12.34")
        expect(page.locator("form[action='/billing/topup']")).to_have_count(1)
        expect(page.get_by_test_id("stripe-missing")).to_have_count(0)
        expect(page.get_by_test_id("ledger").locator("tbody tr")).to_have_count(1)
        expect(page.get_by_test_id("ledger").locator("tbody tr td").nth(1)).to_have_text("Top-up")
        page.goto("/billing?checkout=success&session_id=cs_someone_else")
        expect(page.get_by_test_id("checkout-status")).to_contain_text("no such payment")
        page.fill("#amount", "0.5")
        page.click("form[action='/billing/topup'] button[type=submit]")
        expect(page.get_by_test_id("topup-error")).to_contain_text("from $1 to $10000")
    finally:
        context.close()
