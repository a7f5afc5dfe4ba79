"""No balance below zero and no key past its limit, whatever a client sends or an upstream reports.

Through real HTTP to a gateway on loopback and the simulator's fakes: the output bound forwarded is
exactly the one the hold covers, inputs without a tight estimate are held at the context window, and
an upstream that reports more than was possible is charged at most what the account can pay, the
rest recorded as overage (the request row, a metric, a log line with the request id).
"""

from __future__ import annotations

import logging
import urllib.request
from decimal import Decimal

import anthropic
import openai
import orjson
import pytest
from sqlalchemy import select

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tokenhub.logs import JsonFormatter
from tokenhub.money import usd_to_nanos
from tokenhub.simulator.openai import FakeOpenAIState


def balance_of(gw: Harness, email: str) -> int:
    return gw.credits(email)["balance_nanos"]


def last_upstream_body(fake: FakeOpenAIState) -> dict:
    return fake.requests[-1].json


class JsonLines(logging.Handler):
    """The gateway's log lines as its JSON formatter writes them (the request id comes from a context variable)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


def test_the_hostile_tool_call_request_of_the_issue_never_overdraws(gateway: Harness, upstream_url: str, fake_openai):
    """$0.00021, n=128, max_tokens=1, a reply of tool calls: the fake stops at max_tokens like the real API."""
    gw = gateway
    gw.channel("deepseek", upstream_url)
    cust = customer(gw, credits_usd="0.00021")
    client = gw.client(cust.key)
    try:
        reply = client.chat.completions.with_raw_response.create(
            model="deepseek/deepseek-v4-flash", n=128, max_tokens=1,
            messages=[{"role": "user", "content": "#fake:tools"}],
            tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        )
    except openai.APIStatusError as err:  # refused before any upstream call: fine, nothing moved
        assert err.status_code == 402
        assert balance_of(gw, cust.email) == usd_to_nanos("0.00021")
    else:
        completion = reply.parse()
        assert last_upstream_body(fake_openai)["max_tokens"] == 1
        assert all(c.finish_reason == "length" for c in completion.choices)
        row = gw.request_row(reply.headers["x-request-id"])
        assert row.cost_nanos <= row.hold_nanos and row.overage_nanos == 0
    assert balance_of(gw, cust.email) >= 0
    assert gw.ledger_report().ok, gw.ledger_report().problems


def test_an_upstream_reporting_more_than_possible_is_charged_at_most_the_balance(gateway: Harness, upstream_url: str):
    gw = gateway
    priced_model(gw, upstream_url)
    lines = JsonLines()
    logging.getLogger("tokenhub.ledger").addHandler(lines)
    try:
        for stream in (False, True):
            cust = customer(gw, f"s{int(stream)}@example.com", credits_usd="0.05")
            client = gw.client(cust.key)
            kwargs = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi #fake:overreport=1000000"}]}
            if stream:
                raw = client.chat.completions.with_raw_response.create(
                    **kwargs, stream=True, stream_options={"include_usage": True}
                )
                list(raw.parse())
            else:
                raw = client.chat.completions.with_raw_response.create(**kwargs)
            gw.flush()
            row = gw.request_row(raw.headers["x-request-id"])
            usage_cost = 1_000_000 * 3_000 + 1_000_000 * 15_000  # nanos: far beyond a hold for 5 output tokens
            assert row.cost_nanos + row.overage_nanos >= usage_cost
            assert row.cost_nanos == usd_to_nanos("0.05") and row.overage_nanos > 0  # everything the account had
            assert balance_of(gw, cust.email) == 0
    finally:
        logging.getLogger("tokenhub.ledger").removeHandler(lines)
    report = gw.ledger_report()
    assert report.ok, report.problems
    overage_lines = [line for line in lines.lines if "overage" in line["message"]]
    assert len(overage_lines) == 2 and all(line["request_id"].startswith("gen-") for line in overage_lines)
    metrics = gw.gw.metrics.render().decode()
    assert "tokenhub_overage_requests_total 2.0" in metrics


def test_a_key_limit_holds_against_an_overreporting_upstream(gateway: Harness, upstream_url: str):
    gw = gateway
    priced_model(gw, upstream_url)
    cust = customer(gw, credits_usd="10", limit_nanos=usd_to_nanos("0.02"))
    client = gw.client(cust.key)
    client.chat.completions.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x #fake:overreport=500000"}])
    with pytest.raises(openai.APIStatusError) as refused:  # the key is spent to its limit: the next hold is refused
        client.chat.completions.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert refused.value.status_code == 402
    gw.flush()
    key = gw.read(lambda c: _key_counters(c))
    assert key == (usd_to_nanos("0.02"), 0)
    assert balance_of(gw, cust.email) == usd_to_nanos("10") - usd_to_nanos("0.02")
    assert gw.ledger_report().ok


async def _key_counters(conn):
    from tokenhub.storage.tables import api_keys

    row = (await conn.execute(select(api_keys.c.used_nanos, api_keys.c.held_nanos))).one()
    return tuple(row)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_a_huge_output_bound_is_forwarded_clamped_to_the_models_maximum(gateway: Harness, upstream_url: str, fake_openai, field):
    gw = gateway
    priced_model(gw, upstream_url)  # max output 8,192
    cust = customer(gw)
    raw = gw.client(cust.key).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], **{field: 1_000_000_000}
    )
    assert last_upstream_body(fake_openai)[field] == 8_192
    row = gw.request_row(raw.headers["x-request-id"])
    # The hold covers exactly the forwarded bound: 8,192 output tokens at $15/M plus the prompt's bound at $3/M.
    assert row.hold_nanos - 8_192 * 15_000 > 0 and row.hold_nanos < 8_192 * 15_000 + 1_000 * 3_000


def test_without_a_bound_the_models_maximum_is_forwarded_in_the_vendors_field(gateway: Harness, upstream_url: str, fake_openai):
    gw = gateway
    gw.channel("openai", upstream_url, name="oai")
    gw.channel("deepseek", upstream_url, name="ds")
    cust = customer(gw)
    client = gw.client(cust.key)
    client.chat.completions.create(model="openai/gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    body = last_upstream_body(fake_openai)
    assert "max_tokens" not in body and body["max_completion_tokens"] == gw.gw.directory.catalog.resolve("openai/gpt-4.1").max_output_tokens
    client.chat.completions.create(model="deepseek/deepseek-v4-flash", messages=[{"role": "user", "content": "hi"}])
    assert last_upstream_body(fake_openai)["max_tokens"] == 393_216


def test_anthropic_and_gemini_bounds_are_clamped(gateway: Harness, anthropic_url: str, gemini_url: str, fake_anthropic, fake_gemini):
    gw = gateway
    gw.channel("anthropic", anthropic_url, name="claude")
    gw.channel("gemini", gemini_url, name="gm")
    cust = customer(gw)
    claude = gw.gw.directory.catalog.resolve("anthropic/claude-sonnet-4-6")
    client = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=10**9, messages=[{"role": "user", "content": "hi"}]) as events:
        assert "".join(events.text_stream)
    client.close()
    assert fake_anthropic.requests[-1].json["max_tokens"] == claude.max_output_tokens  # the pass-through too
    gemini = gw.gw.directory.catalog.resolve("google/gemini-2.5-pro")
    gw.client(cust.key).chat.completions.create(
        model="google/gemini-2.5-pro", max_tokens=10**9, messages=[{"role": "user", "content": "hi"}]
    )
    assert fake_gemini.requests[-1].json["generationConfig"]["maxOutputTokens"] == gemini.max_output_tokens


PDF = {"type": "file", "file": {"filename": "big.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}


def test_a_file_part_is_held_at_the_context_window_or_refused_with_a_402(gateway: Harness, upstream_url: str):
    gw = gateway
    priced_model(gw, upstream_url)  # context 128,000 at $3/M: $0.384 for the prompt alone
    poor = customer(gw, "poor@example.com", credits_usd="0.30")
    messages = [{"role": "user", "content": [{"type": "text", "text": "summarise"}, PDF]}]
    with pytest.raises(openai.APIStatusError) as refused:
        gw.client(poor.key).chat.completions.create(model=MODEL, max_tokens=10, messages=messages)
    assert refused.value.status_code == 402 and "Insufficient credits" in refused.value.message
    rich = customer(gw, "rich@example.com", credits_usd="1")
    raw = gw.client(rich.key).chat.completions.with_raw_response.create(model=MODEL, max_tokens=10, messages=messages)
    row = gw.request_row(raw.headers["x-request-id"])
    assert row.hold_nanos == (128_000 * 3_000_000_000 + 10 * 15_000_000_000 + 500_000) // 1_000_000
    assert gw.ledger_report().ok


def test_the_overage_appears_in_the_operator_overview(gateway: Harness, upstream_url: str):
    gw = gateway
    priced_model(gw, upstream_url)
    cust = customer(gw, credits_usd="0.01")
    gw.client(cust.key).chat.completions.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x #fake:overreport=100000"}]
    )
    gw.flush()
    gw.user("ops@example.com", None, admin=True)
    admin_key = gw.key("ops@example.com")
    asked = urllib.request.Request(f"{gw.server.url}/api/admin/stats/overview", headers={"Authorization": f"Bearer {admin_key}"})
    with urllib.request.urlopen(asked, timeout=10) as resp:
        overview = orjson.loads(resp.read())
    expected = 100_000 * 3_000 + (100_000 + 5) * 15_000 - usd_to_nanos("0.01")
    assert Decimal(overview["data"]["totals"]["overage"]) * 10**9 >= expected - 5 * 15_000

