"""The usage page, its CSV export, the dashboard's chart and the keys page's usage, in a real browser."""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from playwright.sync_api import Page, expect
from sqlalchemy import insert

from tests.console.conftest import log_in, make_user
from tests.support.scenarios import MODEL, cost_nanos, priced_model
from tokenhub.accounts import service as accounts
from tokenhub.billing import service as billing
from tokenhub.money import format_usd, usd_to_nanos
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import requests, tasks

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def usd(nanos: int) -> str:
    return f"${format_usd(nanos)}"


def key_ids(console, email: str) -> dict[str, int]:
    return {key["name"]: key["id"] for key in console.read(lambda c: accounts.list_keys(c, email))}


def seed(console, user_id: int, key_id: int, times: list[datetime], tag: str = "seed",
         vary: Callable[[int], dict[str, Any]] | None = None, **values: Any) -> list[str]:
    """Settled requests at the given times (what the relay records); ``vary(n)`` changes row n."""
    rows = []
    for n, created_at in enumerate(times):
        row = {
            "id": f"gen-{tag}{key_id:04d}{n:08x}", "user_id": user_id, "key_id": key_id, "model": "test/seeded",
            "endpoint": "chat", "stream": False, "state": "settled", "status": "ok", "http_status": 200, "hold_nanos": 0,
            "cost_nanos": 1_000 * (n + 1), "prompt_tokens": 100 + n, "completion_tokens": 10, "cached_tokens": 0,
            "cache_write_tokens": 0, "reasoning_tokens": 0, "estimated": False, "latency_ms": 1234, "ttfb_ms": 100,
            "instance_id": "seed", "created_at": created_at, **values, **(vary(n) if vary else {}),
        }
        rows.append(row)

    async def write(conn: Any) -> None:
        await conn.execute(insert(requests), rows)

    console.write(write)
    return [row["id"] for row in rows]


def chat(client: Any, content: str) -> tuple[str, Any]:
    """One chat request through the official SDK: the gateway's request id (X-Request-Id) and the completion."""
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": content}])
    return raw.headers["x-request-id"], raw.parse()


def seed_tasks(console, user_id: int, key_id: int, now: datetime) -> None:
    """Two video tasks as the poller leaves them: one finished with its video, one still running."""
    common = {"user_id": user_id, "key_id": key_id, "model": "bytedance/doubao-seedance-2.0", "upstream_model": "seedance",
              "job": "{}", "price_nanos": 138_000_000, "hold_nanos": 690_000_000, "callback_attempts": 0, "poll_attempts": 0}
    rows = [
        {**common, "id": "tsk-demo-done", "status": "succeeded", "cost_nanos": 690_000_000, "duration_seconds": "5",
         "video_url": "https://videos.example/cat-surfing.mp4", "created_at": now - timedelta(hours=3),
         "updated_at": now, "expires_at": now + timedelta(days=1)},
        {**common, "id": "tsk-demo-run", "status": "running", "cost_nanos": 0, "duration_seconds": None, "video_url": None,
         "created_at": now - timedelta(minutes=2), "updated_at": now, "expires_at": None},
    ]

    async def write(conn: Any) -> None:
        await conn.execute(insert(tasks), rows)

    console.write(write)


def csv_rows(page: Page, query: str = "") -> tuple[int, dict[str, str], list[dict[str, str]]]:
    response = page.request.get(f"/usage.csv{query}")
    body = response.body().decode("utf-8-sig") if response.status == 200 else ""
    return response.status, response.headers, list(csv.DictReader(io.StringIO(body)))


def shown_ids(page: Page) -> list[str]:
    return page.locator("[data-testid=requests] tbody tr").evaluate_all("rows => rows.map(r => r.dataset.requestId)")


def test_usage_filters_pages_and_exports(console, new_page, upstream_url):
    priced_model(console, upstream_url)
    user = make_user(console, "ana@example.com")
    console.write(lambda c: billing.add_credits(c, user["id"], usd_to_nanos("5")))
    key = console.key("ana@example.com", name="=HYPERLINK(\"x\")")  # a name a spreadsheet would run
    console.key("ana@example.com", name="batch")
    ids = key_ids(console, "ana@example.com")

    # One real request through the SDK, and 60 older ones of the other key, a minute apart.
    request_id, reply = chat(console.client(key), "hi")
    cost = cost_nanos(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    console.flush()
    start = utc_now() - timedelta(days=2)
    seeded = seed(console, user["id"], ids["batch"], [start + timedelta(minutes=n) for n in range(60)])
    failed = seed(console, user["id"], ids["batch"], [start - timedelta(days=1)], tag="failed", status="upstream_error",
                  http_status=502, cost_nanos=0)

    page = new_page()
    log_in(page, "ana@example.com")
    page.goto("/usage")
    rows = page.locator("[data-testid=requests] tbody tr")
    expect(rows).to_have_count(50)
    newest = rows.first
    expect(newest).to_have_attribute("data-request-id", request_id)
    expect(newest).to_contain_text(MODEL)
    expect(newest).to_contain_text('=HYPERLINK("x")')
    expect(newest.locator(".cost")).to_have_text(usd(cost))
    expect(newest).to_contain_text("OK")

    # Keyset pages: newest first, every row once.
    ids_seen = shown_ids(page)
    page.get_by_test_id("older").click()
    expect(rows).to_have_count(12)
    ids_seen += shown_ids(page)
    assert ids_seen == [request_id, *reversed(seeded), *failed]
    expect(page.get_by_test_id("older")).to_have_count(0)
    page.get_by_role("link", name="Newest").click()
    expect(rows.first).to_have_attribute("data-request-id", request_id)

    # Filters, from the form (keyboard only): the key, then a status.
    page.select_option("#f-key", str(ids["batch"]))
    page.focus("#f-model")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{console.server.url}/usage?key={ids['batch']}&model=&status=&from=&to=")
    expect(rows).to_have_count(50)
    expect(rows.first).to_have_attribute("data-request-id", seeded[-1])
    page.select_option("#f-status", "upstream_error")
    page.click("form[data-testid=filters] button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Upstream error")
    expect(rows.first).to_contain_text("502")
    page.goto(f"/usage?model={MODEL}")
    assert shown_ids(page) == [request_id]
    day = (start - timedelta(days=1)).date().isoformat()
    page.goto(f"/usage?from={day}&to={day}")
    assert shown_ids(page) == failed
    page.goto("/usage?from=2000-01-01&to=2000-01-02")
    expect(page.get_by_test_id("no-requests")).to_have_text("No requests match these filters.")

    # The CSV export: the filtered set, exact costs, formulas defused, nobody else's rows.
    status, headers, exported = csv_rows(page)
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert headers["x-request-id"].startswith("gen-")  # a response the page prepares itself names its request too
    assert "attachment" in headers["content-disposition"]
    assert [row["request_id"] for row in exported] == [request_id, *reversed(seeded), *failed]
    first = exported[0]
    assert (first["model"], first["cost_usd"], first["key_name"]) == (MODEL, format_usd(cost), "'=HYPERLINK(\"x\")")
    assert first["prompt_tokens"] == str(reply.usage.prompt_tokens) and first["status"] == "ok"
    status, _, exported = csv_rows(page, f"?key={ids['batch']}&status=upstream_error")
    assert [row["request_id"] for row in exported] == failed
    page.goto(f"/usage?key={ids['batch']}&status=ok")
    href = page.get_by_test_id("export-csv").get_attribute("href")
    assert href == f"/usage.csv?key={ids['batch']}&status=ok"

    # Bad parameters: a friendly page with the form, never a 500.
    for query, status, message in [
        ("?key=abc", 400, "There is no such API key among yours."),
        ("?key=99999999999999999999", 400, "There is no such API key among yours."),
        ("?key=424242", 404, "There is no such API key among yours."),
        ("?from=notadate", 400, "Enter the start day as a date"),
        ("?to=9999-12-31", 400, "Enter the end day as a date"),
        ("?from=2026-02-01&to=2026-01-01", 400, "Enter the end day as a date on or after the start day"),
        ("?status=bogus", 400, "Pick a status from the list."),
        ("?model=" + "m" * 300, 400, "The model name is too long."),
        ("?before=" + "9" * 400, 400, "That page of results does not exist."),
        ("?before=gen-0000", 400, "That page of results does not exist."),
        ("?tasks_before=tsk-nope", 400, "That page of results does not exist."),
    ]:
        response = page.goto(f"/usage{query}")
        assert response is not None and response.status == status, query
        expect(page.get_by_test_id("usage-error")).to_contain_text(message)
        expect(page.locator("form[data-testid=filters]")).to_be_visible()
        exported = page.request.get(f"/usage.csv{query}").status
        assert exported == (200 if "before=" in query else status), query  # the export ignores page cursors

    # Signed out: to the login page, for the export too.
    other = new_page()
    other.goto("/usage.csv")
    expect(other).to_have_url(f"{console.server.url}/login?next=%2Fusage.csv")


def test_dashboard_chart_and_key_usage(console, new_page, upstream_url):
    priced_model(console, upstream_url)
    user = make_user(console, "dan@example.com")
    console.write(lambda c: billing.add_credits(c, user["id"], usd_to_nanos("5")))
    key = console.key("dan@example.com", name="laptop")
    console.key("dan@example.com", name="idle")
    ids = key_ids(console, "dan@example.com")
    client = console.client(key)
    costs, tokens = 0, 0
    for word in ("one", "two three"):
        reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": word}])
        costs += cost_nanos(reply.usage.prompt_tokens, reply.usage.completion_tokens)
        tokens += reply.usage.prompt_tokens + reply.usage.completion_tokens
    console.flush()
    yesterday = utc_now() - timedelta(days=1)
    seed(console, user["id"], ids["laptop"], [yesterday], tag="other", model="test/other", cost_nanos=7_000_000, prompt_tokens=5,
         completion_tokens=5)
    long_ago = utc_now() - timedelta(days=40)  # outside the chart's 30 days
    seed(console, user["id"], ids["laptop"], [long_ago], tag="old", cost_nanos=1_000_000_000)

    page = new_page()
    log_in(page, "dan@example.com")
    expect(page.get_by_test_id("period-spend")).to_have_text(usd(costs + 7_000_000))
    expect(page.get_by_test_id("period-requests")).to_have_text("3")
    expect(page.get_by_test_id("period-tokens")).to_have_text(f"{tokens + 10:,}")
    chart = page.get_by_test_id("spend-chart")
    today = utc_now().date().isoformat()
    expect(chart.locator(f"rect[data-day='{today}']")).to_have_count(1)
    expect(chart.locator(f"rect[data-day='{today}'] title")).to_have_text(f"{today} · {MODEL}: {usd(costs)}")
    expect(chart.locator(f"rect[data-day='{yesterday.date().isoformat()}']")).to_have_count(1)
    expect(chart.locator("rect[data-day]")).to_have_count(2)
    legend = page.get_by_test_id("chart-legend").locator("li")
    expect(legend).to_have_text(["test/other ($0.007)", f"{MODEL} ({usd(costs)})"])  # the dearest first
    page.get_by_text("Show the figures").click()
    expect(page.get_by_test_id("chart-table").locator("tbody tr").first).to_contain_text(usd(costs))
    recent = page.get_by_test_id("recent-requests").locator("tbody tr")
    expect(recent).to_have_count(4)
    expect(recent.first).to_contain_text("laptop")

    # The keys page: each key's requests, tokens and spend, and a link to its usage.
    page.goto("/keys")
    row = page.locator("tr", has_text="laptop")
    expect(row.get_by_test_id("key-requests")).to_have_text("4")
    expect(row.get_by_test_id("key-spend")).to_have_text(usd(costs))  # the seeded rows bypassed the ledger
    expect(page.locator("tr", has_text="idle").get_by_test_id("key-requests")).to_have_text("0")
    row.get_by_role("link", name="Usage of key laptop").click()
    expect(page).to_have_url(f"{console.server.url}/usage?key={ids['laptop']}")
    expect(page.locator("#f-key option:checked")).to_contain_text("laptop")
    expect(page.locator("[data-testid=requests] tbody tr")).to_have_count(4)


def test_usage_on_a_phone(console, new_page, upstream_url, tmp_path):
    priced_model(console, upstream_url)
    user = make_user(console, "pho@example.com")
    console.key("pho@example.com", name="a-rather-long-key-name-for-a-small-screen")
    ids = key_ids(console, "pho@example.com")
    seed(console, user["id"], next(iter(ids.values())), [utc_now() - timedelta(hours=n) for n in range(5)])
    page = new_page(viewport={"width": 375, "height": 700}, is_mobile=True)
    log_in(page, "pho@example.com")
    for path in ("/usage", "/", "/keys"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
    page.goto("/usage")
    expect(page.locator("[data-testid=requests] tbody tr").first).to_be_visible()
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    page.screenshot(path=str(target / "usage-phone-en.png"), full_page=True)


def test_usage_screenshots(console, new_page, upstream_url, tmp_path):
    """Usage and dashboard in both languages, with data (into docs/screenshots with TOKENHUB_SCREENSHOTS=1)."""
    target = SCREENSHOTS if os.environ.get("TOKENHUB_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    priced_model(console, upstream_url)
    user = make_user(console, "demo@example.com")
    console.write(lambda c: billing.add_credits(c, user["id"], usd_to_nanos("25.5"), note="top-up"))
    key = console.key("demo@example.com", name="laptop")
    console.key("demo@example.com", name="ci-runner")
    ids = key_ids(console, "demo@example.com")
    for word in ("hello", "a longer question about prices"):
        console.client(key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": word}])
    console.flush()
    now = utc_now().replace(minute=0, second=0, microsecond=0)
    for n, model in enumerate(("openai/gpt-4.1", "anthropic/claude-sonnet-4.5", "deepseek/deepseek-v4-pro")):
        times = [now - timedelta(days=d, hours=n) for d in range(1, 29) if (d + 2 * n) % 6 != 0]

        def vary(i: int, n: int = n) -> dict[str, Any]:
            prompt = 800 + (i * 137 + n * 311) % 2400
            return {"prompt_tokens": prompt, "completion_tokens": prompt // 4,
                    "cost_nanos": (prompt * (3 + 2 * n) + prompt // 4 * 15) * 1_000}

        seed(console, user["id"], ids["ci-runner"], times, tag=f"demo{n}", model=model, vary=vary)
    seed_tasks(console, user["id"], ids["laptop"], now)
    for lang in ("en", "zh"):
        page = new_page(locale="zh-CN" if lang == "zh" else "en-US", viewport={"width": 1100, "height": 900})
        log_in(page, "demo@example.com")
        expect(page.get_by_test_id("spend-chart")).to_be_visible()
        page.screenshot(path=str(target / f"dashboard-{lang}.png"), full_page=True)
        page.goto(f"/usage?from={(now - timedelta(days=2)).date().isoformat()}")
        expect(page.get_by_test_id("tasks")).to_be_visible()
        page.screenshot(path=str(target / f"usage-{lang}.png"), full_page=True)
    for name in ("dashboard-en", "dashboard-zh", "usage-en", "usage-zh"):
        assert (target / f"{name}.png").stat().st_size < 600_000
