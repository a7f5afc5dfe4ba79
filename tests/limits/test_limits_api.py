"""Limits through the running gateway: 429 with Retry-After and x-ratelimit-* headers, exact at the boundary.

Rates (rpm, tpm, concurrency) live in memory or Redis; spend by day/week/month is enforced by the
ledger when each hold is admitted, so it is exact on both databases and across processes.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import openai
import pytest
from sqlalchemy import select

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tokenhub.accounts import service as accounts
from tokenhub.storage.tables import requests as requests_table

HELLO = [{"role": "user", "content": "say hello"}]


def chat(client: openai.OpenAI, content: str = "say hello", **kwargs):
    return client.chat.completions.with_raw_response.create(model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=20, **kwargs)


def key_id_of(gw: Harness, email: str) -> int:
    return gw.read(lambda c: accounts.list_keys(c, email))[-1]["id"]


def request_rows(gw: Harness) -> list:
    return gw.read(lambda c: _rows(c))


async def _rows(conn):
    return (await conn.execute(select(requests_table).order_by(requests_table.c.created_at))).all()


def test_a_stream_says_what_the_limits_leave_in_its_headers(gateway: Harness, upstream_url: str):
    """A stream's response is prepared by the relay, before its first bytes: the rate headers and the request
    id go out with it as with a whole answer."""
    priced_model(gateway, upstream_url)
    cust = customer(gateway, limits={"rpm": 5})
    client = gateway.client(cust.key)
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=HELLO, max_tokens=20, stream=True) as raw:
        assert raw.headers["x-ratelimit-limit-requests"] == "5"
        assert raw.headers["x-ratelimit-remaining-requests"] == "4"
        request_id = raw.headers["x-request-id"]
        assert "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    gateway.flush()
    assert [row.id for row in request_rows(gateway)] == [request_id]


def test_rpm_on_a_key_answers_429_with_headers_and_charges_nothing(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway, limits={"rpm": 3})
    client = gateway.client(cust.key)
    for left in ("2", "1", "0"):
        raw = chat(client)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == left
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    response = refused.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert b'tokenhub_limited_total{limit="rpm",scope="key"} 1.0' in gateway.gw.metrics.render()
    gateway.flush()
    assert len(request_rows(gateway)) == 3  # the refused request held nothing
    assert gateway.ledger_report().ok


def test_account_rpm_spans_all_its_keys(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    second = gateway.key(cust.email, name="second")
    gateway.write(lambda c: accounts.set_account_limits(c, cust.email, {"rpm": "2"}))
    chat(gateway.client(cust.key))
    chat(gateway.client(second))
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gateway.client(cust.key))
    assert "account allows 2 requests per minute" in refused.value.message


def test_concurrency_limit_refuses_while_a_stream_is_open(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway, limits={"concurrency": 1})
    client = gateway.client(cust.key)
    first_chunk, finish = threading.Event(), threading.Event()
    chunks: list = []

    def stream() -> None:
        with client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "tell me #fake:delay=0.2"}], stream=True
        ) as events:
            for chunk in events:
                chunks.append(chunk)
                first_chunk.set()
        finish.set()

    thread = threading.Thread(target=stream)
    thread.start()
    assert first_chunk.wait(10)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    assert refused.value.response.headers["x-ratelimit-remaining-concurrency"] == "0"
    thread.join(20)
    assert finish.is_set()
    assert chat(client).headers["x-ratelimit-remaining-concurrency"] == "0"  # the slot came back


def test_tpm_refuses_once_the_minute_used_its_tokens(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    client = gateway.client(cust.key)
    used = chat(client).parse().usage.total_tokens  # measure one request's tokens without limits
    key_id = key_id_of(gateway, cust.email)
    gateway.write(lambda c: accounts.update_key(c, key_id, {"tpm": str(2 * used)}))
    raw = chat(client)
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(2 * used)
    raw = chat(client)  # used < tpm before it: admitted
    assert raw.headers["x-ratelimit-remaining-tokens"] == str(used)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    assert refused.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "tokens per minute" in refused.value.message


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
def test_key_spend_limit_per_period_is_exact_at_the_boundary(database_url: str, make_gateway, upstream_url: str, period: str):
    gw = make_gateway(database_url)
    priced_model(gw, upstream_url)
    cust = customer(gw)
    client = gw.client(cust.key)
    chat(client)
    chat(client)
    gw.flush()
    rows = request_rows(gw)
    spent, hold = sum(r.cost_nanos for r in rows), rows[0].hold_nanos
    assert rows[0].hold_nanos == rows[1].hold_nanos and spent > 0
    key_id = key_id_of(gw, cust.email)
    field = f"{period}_limit_nanos"

    gw.write(lambda c: accounts.update_key(c, key_id, {field: spent + hold - 1}))
    with pytest.raises(openai.RateLimitError) as refused:
        chat(client)
    error = refused.value.response.json()["error"]
    assert error["code"] == f"key_{ {'daily': 'day', 'weekly': 'week', 'monthly': 'month'}[period] }_limit_reached".replace(" ", "")
    now = datetime.now(timezone.utc)
    midnight = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
    retry = int(refused.value.response.headers["retry-after"])
    assert retry >= int((midnight - now).total_seconds()) - 5  # not before the period ends

    gw.write(lambda c: accounts.update_key(c, key_id, {field: spent + hold}))
    chat(client)  # exactly fits
    with pytest.raises(openai.RateLimitError):
        chat(client)
    gw.flush()
    assert len(request_rows(gw)) == 3
    assert gw.ledger_report().ok


def test_account_daily_limit_counts_every_key_and_open_holds(database_url: str, make_gateway, upstream_url: str):
    gw = make_gateway(database_url)
    priced_model(gw, upstream_url)
    cust = customer(gw)
    other_key = gw.key(cust.email, name="other")
    chat(gw.client(cust.key))
    gw.flush()
    (row,) = request_rows(gw)
    gw.write(lambda c: accounts.set_account_limits(c, cust.email, {"daily_limit_nanos": row.cost_nanos + row.hold_nanos}))
    chat(gw.client(other_key))  # the other key spends from the same account budget
    with pytest.raises(openai.RateLimitError) as refused:
        chat(gw.client(cust.key))
    assert refused.value.response.json()["error"]["code"] == "account_day_limit_reached"
    assert b'tokenhub_limited_total{limit="day",scope="account"} 1.0' in gw.gw.metrics.render()
    assert "account's spending limit" in refused.value.message


def test_account_total_limit_is_a_402(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    gateway.write(lambda c: accounts.set_account_limits(c, cust.email, {"limit": "0.000001"}))
    with pytest.raises(openai.APIStatusError) as refused:
        chat(gateway.client(cust.key))
    assert refused.value.status_code == 402
    assert refused.value.response.json()["error"]["code"] == "account_limit_reached"


def test_limits_are_validated(gateway: Harness):
    gateway.user("v@example.com")
    for bad in ({"rpm": "0"}, {"tpm": "-5"}, {"concurrency": "many"}, {"daily_limit": "1.0000000001"}, {"rpm": True}):
        with pytest.raises(Exception) as err:
            gateway.write(lambda c, bad=bad: accounts.create_key(c, "v@example.com", limits=bad))
        assert getattr(err.value, "status", None) == 400, bad


def test_redis_limits_hold_across_two_gateways(database_url: str, make_gateway, upstream_url: str):
    pytest.importorskip("redis")
    from tests.limits.test_rates import REDIS_URL

    first = make_gateway(database_url, redis_url=REDIS_URL)
    second = make_gateway(database_url, redis_url=REDIS_URL)
    priced_model(first, upstream_url)
    cust = customer(first, limits={"rpm": 3})
    second.run(second.gw.directory.refresh_if_changed())
    clients = [first.client(cust.key), second.client(cust.key)]
    remaining = [chat(clients[i % 2]).headers["x-ratelimit-remaining-requests"] for i in range(3)]
    assert remaining == ["2", "1", "0"]
    for client in clients:
        with pytest.raises(openai.RateLimitError):
            chat(client)


def test_unreachable_redis_fails_closed_only_for_limited_keys(gateway: Harness, make_gateway, sqlite_url: str, upstream_url: str, tmp_path):
    gw = make_gateway(f"sqlite:///{tmp_path / 'redis-down.db'}", redis_url="redis://127.0.0.1:1/0")
    priced_model(gw, upstream_url)
    limited = customer(gw, limits={"rpm": 100})
    free = customer(gw, "free@example.com")
    with pytest.raises(openai.InternalServerError) as refused:
        chat(gw.client(limited.key))
    assert refused.value.status_code == 503
    assert refused.value.response.json()["error"]["code"] == "limits_unavailable"
    assert chat(gw.client(free.key)).parse().choices  # a key without rate limits does not need Redis
    gw.flush()
    assert len(request_rows(gw)) == 1 and gw.ledger_report().ok
