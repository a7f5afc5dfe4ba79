"""The operator's story in a real browser: add a channel, test it, change a price, see it billed and counted.

Plus who may see the operator pages, CSRF on their forms, escaping of what users and operators typed,
and the upstream key never reaching a page.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from decimal import ROUND_HALF_UP, Decimal

from playwright.sync_api import Page, expect

from tests.conftest import UPSTREAM_KEY
from tests.console.conftest import PASSWORD, csrf_of, log_in, make_user
from tokenhub.billing import service as billing
from tokenhub.catalog import service as catalog_service
from tokenhub.money import format_usd, tokens_cost, usd_to_nanos

SHIPPED = "deepseek/deepseek-v4-pro"  # list price $1.32 in, $3.96 out per 1M tokens
LIST_IN, LIST_OUT = usd_to_nanos("1.32"), usd_to_nanos("3.96")
ADMIN_PAGES = ["/admin", "/admin?days=30", "/admin/users", "/admin/users/1", "/admin/channels", "/admin/channels/1",
               "/admin/models", f"/admin/models/edit?id={SHIPPED}", "/admin/codes"]
ADMIN_POSTS = ["/admin/users/1/credits", "/admin/users/1/disable", "/admin/users/1/remove-admin", "/admin/channels",
               "/admin/channels/1", "/admin/channels/1/test", "/admin/channels/1/disable", "/admin/models/prices",
               "/admin/models/enabled"]


def usd(nanos: int) -> str:
    return f"${format_usd(nanos)}"


def approx(nanos: int) -> str:
    """The overview's rounding, by hand: four decimals below $1."""
    assert 0 < nanos < 10**9
    return "$" + str((Decimal(nanos) / 10**9).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)).rstrip("0").rstrip(".")


def get_json(url: str, key: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def ask(console, key: str) -> tuple[int, int]:
    """One chat request as the customer; its prompt and completion tokens."""
    reply = console.client(key).chat.completions.create(model=SHIPPED, messages=[{"role": "user", "content": "hello"}])
    return reply.usage.prompt_tokens, reply.usage.completion_tokens


def add_channel(page: Page, upstream_url: str, name: str = "fake-openai", key: str = UPSTREAM_KEY) -> None:
    page.goto("/admin/channels")
    page.select_option("#provider", "openai-compatible")
    page.fill("#name", name)
    page.fill("#base_url", upstream_url)
    page.fill("#api_key", key)
    page.fill("#models", SHIPPED)
    page.click("form[action='/admin/channels'] button[type=submit]")


def test_operator_story(console, new_page, upstream_url):
    make_user(console, "boss@example.com", admin=True)
    make_user(console, "cust@example.com")
    console.write(lambda c: billing.add_credits(c, "cust@example.com", usd_to_nanos("10")))
    key = console.key("cust@example.com")
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    log_in(page, "boss@example.com")
    seen_html: list[str] = []

    # 1. A channel to the fake upstream, added in the browser.
    add_channel(page, upstream_url)
    expect(page.get_by_role("status")).to_have_text("The channel was added and serves requests now.")
    row = page.locator("tr[data-channel='fake-openai']")
    expect(row).to_contain_text("OpenAI-compatible server")
    expect(row).to_contain_text(SHIPPED)
    expect(row.locator(".status")).to_have_text("Healthy")
    seen_html.append(page.content())

    # 2. Test, from the keyboard: latency and the upstream's answer.
    row.get_by_role("button", name="Test fake-openai").focus()
    page.keyboard.press("Enter")
    probe = page.get_by_test_id("probe")
    expect(probe.locator("h2")).to_have_text("fake-openai answered")
    expect(page.get_by_test_id("probe-latency")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.get_by_test_id("probe-detail")).to_contain_text("answered")
    expect(probe).to_contain_text(SHIPPED)
    seen_html.append(page.content())

    # 3. The customer is billed at the shipped price.
    prompt1, completion1 = ask(console, key)
    cost1 = tokens_cost([(prompt1, LIST_IN), (completion1, LIST_OUT)])
    assert console.credits("cust@example.com")["balance_nanos"] == usd_to_nanos("10") - cost1

    # 4. The operator changes the price.
    page.goto("/admin/models?q=deepseek-v4-pro")
    model_row = page.locator(f"tr[data-model='{SHIPPED}']")
    expect(model_row.get_by_test_id("serving")).to_have_text("fake-openai")
    model_row.get_by_role("link", name=SHIPPED).click()
    expect(page.locator("h1")).to_have_text(SHIPPED)
    expect(page.locator("#input")).to_have_value("1.32")
    page.fill("#input", "2")
    page.fill("#cached_input", "")
    page.fill("#output", "10")
    page.click("form[action='/admin/models/prices'] button[type=submit]")
    expect(page.get_by_role("status")).to_have_text("The prices were saved.")
    expect(page.get_by_test_id("price").first).to_have_text("in $2")
    seen_html.append(page.content())
    page.goto("/admin/models?q=deepseek-v4-pro")
    expect(page.locator(f"tr[data-model='{SHIPPED}']")).to_contain_text("Overridden")

    # 5. The public catalog and the customer's next request follow at once.
    status, listing = get_json(f"{console.base_url}/models")
    assert status == 200
    public = next(m for m in listing["data"] if m["id"] == SHIPPED)
    assert public["pricing_per_million_tokens"]["input"] == "2" and public["pricing_per_million_tokens"]["output"] == "10"
    # ... and so does the customer's catalog page, in the browser
    customer = new_page()
    log_in(customer, "cust@example.com")
    customer.goto("/models?q=deepseek-v4-pro")
    prices = customer.locator(f"tr[data-model='{SHIPPED}'] .prices")
    expect(prices).to_contain_text("$2")
    expect(prices).to_contain_text("$10")
    expect(prices).not_to_contain_text("$1.32")
    prompt2, completion2 = ask(console, key)
    cost2 = tokens_cost([(prompt2, usd_to_nanos("2")), (completion2, usd_to_nanos("10"))])
    assert console.credits("cust@example.com")["balance_nanos"] == usd_to_nanos("10") - cost1 - cost2

    # 6. The overview: revenue at the prices paid, upstream cost at the list price.
    upstream = tokens_cost([(prompt1 + prompt2, LIST_IN), (completion1 + completion2, LIST_OUT)])
    page.goto("/admin")
    expect(page.get_by_test_id("total-requests")).to_have_text("2")
    # shown rounded for reading, exact in the title
    expect(page.get_by_test_id("total-revenue")).to_have_attribute("title", usd(cost1 + cost2))
    expect(page.get_by_test_id("total-upstream")).to_have_attribute("title", usd(upstream))
    expect(page.get_by_test_id("total-revenue")).to_have_text(approx(cost1 + cost2))
    by_model = page.get_by_test_id("by-model").locator(f"tr[data-model='{SHIPPED}']")
    expect(by_model.locator(f"span[title='{usd(cost1 + cost2)}']")).to_have_count(1)
    expect(by_model.locator(f"span[title='{usd(upstream)}']")).to_have_count(1)
    expect(page.get_by_test_id("by-channel")).to_contain_text("fake-openai")
    expect(page.get_by_test_id("top-customers")).to_contain_text("cust@example.com")
    seen_html.append(page.content())

    # The channel list counts the traffic.
    page.goto("/admin/channels")
    expect(page.locator("tr[data-channel='fake-openai']").get_by_test_id("hour")).to_contain_text("2 requests · 0.0% errors")
    seen_html.append(page.content())

    # 7. Editing with an empty key field keeps the stored key.
    page.goto("/admin/channels")
    page.locator("tr[data-channel='fake-openai']").get_by_role("link", name="Edit fake-openai").click()
    expect(page.locator("#api_key")).to_have_value("")
    page.fill("#weight", "5")
    page.click("form.grid-form button[type=submit]")
    expect(page.get_by_role("status")).to_have_text("The channel was saved.")
    expect(page.locator("tr[data-channel='fake-openai']")).to_contain_text("weight 5")
    ask(console, key)  # still served with the stored key
    seen_html.append(page.content())

    # The upstream key never reaches a page.
    for path in ADMIN_PAGES:
        page.goto(path)
        seen_html.append(page.content())
    assert all(UPSTREAM_KEY not in html for html in seen_html)
    assert dialogs == []


def test_channel_test_failure_is_redacted(console, new_page, upstream_url):
    make_user(console, "boss@example.com", admin=True)
    page = new_page()
    log_in(page, "boss@example.com")
    wrong = "sk-wrong-0123456789abcdef"
    add_channel(page, upstream_url, name="bad-key", key=wrong)
    page.locator("tr[data-channel='bad-key']").get_by_role("button", name="Test bad-key").click()
    expect(page.get_by_test_id("probe").locator("h2")).to_have_text("bad-key failed the test")
    expect(page.get_by_test_id("probe-detail")).to_contain_text("HTTP 401")
    html = page.content()
    assert wrong not in html and wrong[:10] not in html

    # a wrong key is replaced through the edit form (write-only: never shown)
    page.goto("/admin/channels")
    page.locator("tr[data-channel='bad-key']").get_by_role("link", name="Edit bad-key").click()
    assert wrong not in page.content()
    page.fill("#api_key", UPSTREAM_KEY)
    page.fill("#channel-key-confirm-password", PASSWORD)  # a new key asks for the password again (step-up)
    page.click("form.grid-form button[type=submit]")
    page.locator("tr[data-channel='bad-key']").get_by_role("button", name="Test bad-key").click()
    expect(page.get_by_test_id("probe").locator("h2")).to_have_text("bad-key answered")
    assert UPSTREAM_KEY not in page.content()

    # a disabled channel cannot be tested; enabling it brings the button back
    page.once("dialog", lambda d: d.accept())
    page.locator("tr[data-channel='bad-key']").get_by_role("button", name="Disable bad-key").click()
    expect(page.get_by_role("status")).to_have_text("The channel was disabled.")
    row = page.locator("tr[data-channel='bad-key']")
    expect(row.locator(".status")).to_have_text("Disabled")
    expect(row.get_by_role("button", name="Test bad-key")).to_have_count(0)
    row.get_by_role("button", name="Enable bad-key").click()
    expect(page.get_by_role("status")).to_have_text("The channel was enabled.")


def test_non_admins_get_403_everywhere(console, new_page, upstream_url):
    make_user(console, "boss@example.com", admin=True)
    make_user(console, "cust@example.com")
    console.channel("openai-compatible", upstream_url)
    page = new_page()
    log_in(page, "cust@example.com")
    expect(page.locator("nav[aria-label='Administration']")).to_have_count(0)
    for path in ADMIN_PAGES:
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        expect(page.locator("h1")).to_have_text("Not allowed")
    csrf = csrf_of(page)
    for path in ADMIN_POSTS:
        response = page.request.post(path, form={"csrf": csrf, "amount": "100", "model": SHIPPED, "enabled": "0"})
        assert response.status == 403, path
    assert console.credits("cust@example.com")["balance_nanos"] == 0
    key = console.key("cust@example.com")
    status, body = get_json(f"{console.server.url}/api/admin/stats/overview", key)
    assert status == 403 and body["error"]["code"] == "admin_only"

    signed_out = new_page()
    for path in ADMIN_PAGES[:3]:
        signed_out.goto(path)
        expect(signed_out.locator("h1")).to_have_text("Log in")


def test_admin_forms_refuse_a_bad_csrf_token(console, new_page):
    make_user(console, "boss@example.com", admin=True)
    victim = make_user(console, "victim@example.com")
    page = new_page()
    log_in(page, "boss@example.com")
    page.goto(f"/admin/users/{victim['id']}")
    for path, form in ((f"/admin/users/{victim['id']}/disable", {}), (f"/admin/users/{victim['id']}/credits", {"amount": "50"}),
                       ("/admin/models/enabled", {"model": SHIPPED, "enabled": "0"})):
        response = page.request.post(path, form={"csrf": "forged", **form})
        assert response.status == 403 and "This form has expired" in response.text()
        response = page.request.post(path, form={"csrf": csrf_of(page), **form}, headers={"Origin": "https://evil.example"})
        assert response.status == 403
    assert console.credits("victim@example.com")["balance_nanos"] == 0
    page.reload()
    expect(page.get_by_test_id("user-status")).to_have_text("Active")
    status, listing = get_json(f"{console.base_url}/models")
    assert SHIPPED in {m["id"] for m in listing["data"]}


def test_what_users_and_operators_typed_is_shown_as_text(console, new_page, upstream_url):
    make_user(console, "boss@example.com", admin=True)
    evil_email = "<img/src=x/onerror=alert(1)>@evil.io"
    evil = make_user(console, evil_email)
    console.write(lambda c: billing.add_credits(c, evil["id"], usd_to_nanos("1"), note="<script>alert('note')</script>"))
    evil_model = "<img src=x onerror=alert('model')>"
    console.write(lambda c: catalog_service.add_model(c, "local/xss", provider="openai-compatible", name=evil_model))
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, "boss@example.com")

    page.goto("/admin/users?q=evil")
    expect(page.get_by_test_id("users").locator("a")).to_have_text(evil_email)
    page.get_by_test_id("users").locator("a").click()
    expect(page.get_by_test_id("user-email")).to_have_text(evil_email)
    # the operator's own note, with markup, stays text
    page.fill("#amount", "2")
    page.fill("#note", "<b onmouseover=alert(2)>bonus</b>")
    page.click("form[action$='/credits'] button[type=submit]")
    ledger = page.get_by_test_id("user-ledger")
    expect(ledger.locator("tbody tr").first).to_contain_text("<b onmouseover=alert(2)>bonus</b>")
    expect(ledger).to_contain_text("<script>alert('note')</script>")
    assert page.locator("img").count() == 0 and page.locator("b[onmouseover]").count() == 0

    page.goto("/admin/models?q=local/xss")
    expect(page.locator("tr[data-model='local/xss']")).to_contain_text(evil_model)
    page.goto("/admin/models/edit?id=local/xss")
    expect(page.locator(".badges")).to_contain_text(evil_model)
    assert page.locator("img").count() == 0

    # A channel name with markup is refused, and echoed back as text in the form.
    add_channel(page, upstream_url, name="<script>alert('ch')</script>")
    expect(page.get_by_role("alert")).to_have_text(
        "A channel name has letters, digits, - _ or ., is not only digits, and has at most 100 characters.")
    expect(page.locator("#name")).to_have_value("<script>alert('ch')</script>")
    assert page.locator("#api_key").input_value() == ""  # a refused form does not echo the key back
    assert UPSTREAM_KEY not in page.content()

    # The overview shows the customer's email as text too.
    console.write(lambda c: catalog_service.set_model(c, "local/xss", input_price=1))
    page.goto("/admin")
    assert dialogs == []
