"""POST /api/v1/messages/count_tokens is admitted like any request, and seen in usage.

Before, it bypassed every limit: an ``rpm 1`` key counted 5 times out of 5, and a self-signed-up
account with $0 made unlimited calls to Anthropic with the operator's key. Now it needs the key's
model allow-list, its rate limits and a positive balance, answers refusals in Anthropic's format,
and records a request of endpoint ``count_tokens`` costing 0.
"""

from __future__ import annotations

import anthropic
import pytest
from sqlalchemy import select

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.simulator.anthropic import FakeAnthropicState
from tokenhub.storage.tables import requests

CLAUDE = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "one two three four"}]


@pytest.fixture
def gw(gateway: Harness, anthropic_url: str, upstream_url: str) -> Harness:
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("deepseek", upstream_url, name="ds")
    return gateway


def sdk(gw: Harness, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=key, max_retries=0)


def count_calls(fake: FakeAnthropicState) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/messages/count_tokens")


def rows(gw: Harness) -> list:
    async def fetch(conn):
        return (await conn.execute(select(requests).order_by(requests.c.created_at))).all()

    return gw.read(fetch)


def test_rate_limits_apply(gw: Harness, fake_anthropic: FakeAnthropicState):
    cust = customer(gw, limits={"rpm": 1})
    client = sdk(gw, cust.key)
    assert client.messages.count_tokens(model=CLAUDE, messages=MESSAGES).input_tokens > 0
    for _ in range(4):
        with pytest.raises(anthropic.RateLimitError) as exc:
            client.messages.count_tokens(model=CLAUDE, messages=MESSAGES)
        assert exc.value.body["type"] == "error" and exc.value.body["error"]["type"] == "rate_limit_error"
        assert exc.value.response.headers["Retry-After"]
    assert count_calls(fake_anthropic) == 1  # the refused ones never reached Anthropic
    client.close()


@pytest.mark.parametrize("model", [CLAUDE, "deepseek/deepseek-v4-pro"])
def test_an_account_without_credit_is_refused(gw: Harness, fake_anthropic: FakeAnthropicState, model: str):
    cust = customer(gw, credits_usd=None)  # signed up, never paid
    client = sdk(gw, cust.key)
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.count_tokens(model=model, messages=MESSAGES)
    assert exc.value.status_code == 402
    assert exc.value.body["error"]["type"] == "billing_error" and "credits" in exc.value.body["error"]["message"]
    assert count_calls(fake_anthropic) == 0  # no call on the operator's Anthropic key
    assert rows(gw) == []
    client.close()


def test_the_models_allow_list_applies(gw: Harness, fake_anthropic: FakeAnthropicState):
    cust = customer(gw, models="deepseek/*")
    client = sdk(gw, cust.key)
    with pytest.raises(anthropic.PermissionDeniedError) as exc:
        client.messages.count_tokens(model=CLAUDE, messages=MESSAGES)
    assert exc.value.body["error"]["type"] == "permission_error"
    assert client.messages.count_tokens(model="deepseek/deepseek-v4-pro", messages=MESSAGES).input_tokens > 0
    assert count_calls(fake_anthropic) == 0
    client.close()


def test_counts_are_recorded_in_usage_at_no_cost(gw: Harness, fake_anthropic: FakeAnthropicState):
    cust = customer(gw)
    client = sdk(gw, cust.key)
    for model in (CLAUDE, "deepseek/deepseek-v4-pro"):
        assert client.messages.count_tokens(model=model, messages=MESSAGES).input_tokens > 0
    recorded = rows(gw)
    assert count_calls(fake_anthropic) == 1
    assert [(r.endpoint, r.model, r.state, r.status, r.cost_nanos, r.hold_nanos) for r in recorded] == [
        ("count_tokens", "anthropic/" + CLAUDE, "released", "ok", 0, 0),
        ("count_tokens", "deepseek/deepseek-v4-pro", "released", "ok", 0, 0),
    ]
    summary = gw.credits(cust.email)
    assert summary["held_nanos"] == 0 and summary["total_usage_nanos"] == 0 and summary["balance_nanos"] == 10_000_000_000
    assert gw.ledger_report().ok
    client.close()
