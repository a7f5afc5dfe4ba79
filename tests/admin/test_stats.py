"""admin/stats.py on SQLite and PostgreSQL: request rows written by hand, figures computed by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from sqlalchemy import insert

from tests.support.harness import Harness
from tokenhub.billing import stats
from tokenhub.catalog import service as catalog_service
from tokenhub.errors import InvalidRequest
from tokenhub.money import usd_to_nanos
from tokenhub.storage.tables import requests

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
GPT = "openai/gpt-4.1"  # shipped list price: $2 in, $0.50 cached, $8 out per 1M tokens


@pytest.fixture
def traffic(database_url: str, make_gateway: Callable[..., Harness]) -> dict[str, Any]:
    gw = make_gateway(database_url)
    alice, bob = gw.user("alice@x.io", None), gw.user("bob@x.io", None)
    gw.key("alice@x.io"), gw.key("bob@x.io")
    a = gw.channel("openai", "http://127.0.0.1:9/v1", name="chan-a")
    b = gw.channel("openai", "http://127.0.0.1:9/v1", name="chan-b")
    # an operator price (what customers pay) must not change the upstream cost (the list price)
    gw.write(lambda c: catalog_service.set_model(c, GPT, input_price=usd_to_nanos("9")))
    gw.write(lambda c: catalog_service.add_model(c, "local/own", provider="openai-compatible", input_price=1, output_price=1))
    key_of = {alice["id"]: 1, bob["id"]: 2}
    rows = [
        # (id, user, model, channel, endpoint, state, status, http, cost, prompt, cached, completion, latency, age)
        ("r1", alice, GPT, a, "chat", "settled", "ok", 200, 123_456, 1000, 200, 500, 100, timedelta(minutes=50)),
        ("r2", bob, GPT, a, "chat", "settled", "ok", 200, 5_000, 2000, 0, 0, 300, timedelta(minutes=30)),
        ("r3", bob, GPT, b, "chat", "settled", "upstream_error", 502, 0, 0, 0, 0, 50, timedelta(hours=2)),
        ("r4", alice, "local/own", b, "chat", "settled", "ok", 200, 7_777, 100, 0, 100, 200, timedelta(days=2)),
        ("r5", alice, "openai/gpt-image-1", a, "image", "settled", "ok", 200, 40_000_000, 0, 0, 0, 1000, timedelta(hours=20)),
        ("r6", bob, GPT, a, "chat", "held", None, None, 0, 0, 0, 0, None, timedelta(minutes=1)),
        ("r7", bob, GPT, a, "chat", "settled", "client_closed", None, 0, 0, 0, 0, 5000, timedelta(minutes=10)),
        ("r8", alice, GPT, a, "chat", "settled", "ok", 200, 999, 10, 0, 10, 10, timedelta(days=10)),
    ]

    async def write(conn: Any) -> None:
        for rid, user, model, channel, endpoint, state, status, http, cost, prompt, cached, completion, latency, age in rows:
            await conn.execute(insert(requests).values(
                id=rid, user_id=user["id"], key_id=key_of[user["id"]], model=model, channel_id=channel["id"], endpoint=endpoint,
                stream=False, state=state, status=status, http_status=http, hold_nanos=10**9, cost_nanos=cost,
                prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion, latency_ms=latency,
                instance_id="test", created_at=NOW - age,
            ))

    gw.write(write)
    return {"gw": gw, "alice": alice, "bob": bob, "a": a, "b": b}


def read(traffic: dict[str, Any], fn: Callable[[Any], Any]) -> Any:
    return traffic["gw"].read(fn)


def test_overview_figures(traffic: dict[str, Any]) -> None:
    o = read(traffic, lambda c: stats.overview(c, 7, now=NOW))
    assert o["since"] == datetime(2026, 11, 22, tzinfo=timezone.utc)
    # gpt-4.1 on chan-a today: 2800 uncached + 200 cached in, 500 out at $2 / $0.50 / $8 per 1M
    upstream = (2800 * 2_000_000_000 + 200 * 500_000_000 + 500 * 8_000_000_000) // 1_000_000
    assert upstream == 9_700_000
    revenue = 123_456 + 5_000 + 7_777 + 40_000_000
    t = o["totals"]
    assert (t["requests"], t["errors"], t["error_rate"]) == (7, 1, round(1 / 7, 4))
    assert (t["prompt_tokens"], t["completion_tokens"], t["tokens"]) == (3100, 600, 3700)
    assert t["revenue_nanos"] == revenue
    assert t["upstream_cost_nanos"] == upstream
    assert t["unpriced_revenue_nanos"] == 7_777 + 40_000_000  # an operator's own model and an image: no list price
    assert t["margin_nanos"] == 123_456 + 5_000 - upstream

    days = {d["day"]: d for d in o["by_day"]}
    assert list(days) == [f"2026-11-{n}" for n in range(22, 29)]  # every day of the window, oldest first
    assert days["2026-11-28"]["requests"] == 5 and days["2026-11-28"]["upstream_cost_nanos"] == upstream
    assert days["2026-11-27"]["revenue_nanos"] == 40_000_000 and days["2026-11-27"]["upstream_cost_nanos"] == 0
    assert days["2026-11-26"]["revenue_nanos"] == 7_777
    assert days["2026-11-25"]["requests"] == 0

    models = {m["model"]: m for m in o["by_model"]}
    assert [m["model"] for m in o["by_model"]] == ["openai/gpt-image-1", GPT, "local/own"]  # most revenue first
    assert models[GPT]["requests"] == 5 and models[GPT]["errors"] == 1 and models[GPT]["upstream_cost_nanos"] == upstream
    channels = {c["channel"]: c for c in o["by_channel"]}
    assert channels["chan-a"]["requests"] == 5 and channels["chan-a"]["revenue_nanos"] == 123_456 + 5_000 + 40_000_000
    assert channels["chan-b"]["errors"] == 1 and channels["chan-b"]["channel_id"] == traffic["b"]["id"]

    assert [(c["email"], c["requests"], c["revenue_nanos"]) for c in o["top_customers"]] == [
        ("alice@x.io", 3, 123_456 + 7_777 + 40_000_000), ("bob@x.io", 4, 5_000)]
    assert o["errors"] == [{"status": "upstream_error", "http_status": 502, "count": 1}]
    assert [(e["request_id"], e["channel"]) for e in o["recent_errors"]] == [("r3", "chan-b")]

    wider = read(traffic, lambda c: stats.overview(c, 30, now=NOW))
    assert wider["totals"]["requests"] == 8 and len(wider["by_day"]) == 30
    today = read(traffic, lambda c: stats.overview(c, 1, now=NOW))
    assert today["totals"]["requests"] == 5 and [d["day"] for d in today["by_day"]] == ["2026-11-28"]


def test_channel_stats(traffic: dict[str, Any]) -> None:
    figures = read(traffic, lambda c: stats.channel_stats(c, now=NOW))
    a, b = figures[traffic["a"]["id"]], figures[traffic["b"]["id"]]
    # last hour on chan-a: r1, r2, r6 (in flight), r7 (client left): no error; latency of the two successes
    assert a["hour"] == {"requests": 4, "errors": 0, "error_rate": 0.0, "avg_ms": 200, "p50_ms": 100, "p95_ms": 300}
    # last day adds the image (1000 ms): nearest rank p50 = 2nd of 3, p95 = 3rd of 3
    assert a["day"] == {"requests": 5, "errors": 0, "error_rate": 0.0, "avg_ms": 467, "p50_ms": 300, "p95_ms": 1000}
    assert b["hour"] == stats.empty_channel_stats()["hour"]
    assert b["day"] == {"requests": 1, "errors": 1, "error_rate": 1.0, "avg_ms": None, "p50_ms": None, "p95_ms": None}


def test_percentiles_on_many_rows(database_url: str, make_gateway: Callable[..., Harness]) -> None:
    gw = make_gateway(database_url)
    user = gw.user("p@x.io", None)
    gw.key("p@x.io")
    channel = gw.channel("openai", "http://127.0.0.1:9/v1", name="p")

    async def write(conn: Any) -> None:
        for n in range(1, 101):  # latencies 1..100 ms, written in a scrambled order
            latency = (n * 37) % 100 + 1
            await conn.execute(insert(requests).values(
                id=f"p{n}", user_id=user["id"], key_id=1, model=GPT, channel_id=channel["id"], endpoint="chat", stream=False,
                state="settled", status="ok", hold_nanos=0, cost_nanos=0, latency_ms=latency, instance_id="t",
                created_at=NOW - timedelta(minutes=5),
            ))

    gw.write(write)
    hour = gw.read(lambda c: stats.channel_stats(c, now=NOW))[channel["id"]]["hour"]
    assert (hour["p50_ms"], hour["p95_ms"], hour["avg_ms"], hour["requests"]) == (50, 95, 50, 100)  # avg 50.5 rounds to even


def test_window_must_be_offered() -> None:
    with pytest.raises(InvalidRequest):
        stats.check_days(3)
