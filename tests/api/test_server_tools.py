"""Anthropic server tools through POST /api/v1/messages with the official anthropic SDK: priced per use
from the catalog, held for price x max_uses, charged what the upstream reports (stream and not)."""

from __future__ import annotations

import json
import time

import anthropic
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import cost_nanos, customer
from tokenhub.simulator.anthropic import FakeAnthropicState
from tokenhub.simulator.openai import FakeOpenAIState

MODEL = "claude-sonnet-4-6"  # $3/M input, $15/M output (cost_nanos' prices), web search $0.01 per use, web fetch 0
SEARCH_NANOS = 10_000_000
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch"}


@pytest.fixture
def env(claude_customer):
    return claude_customer



def ask(client: anthropic.Anthropic, stream: bool, text: str, tools: list[dict], max_tokens: int = 400):
    kwargs = {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}], "tools": tools}
    if not stream:
        return client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as events:
        return events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_web_search_is_charged_per_use_on_top_of_tokens(env, fake_anthropic: FakeAnthropicState, stream: bool):
    gw, cust, client = env
    message = ask(client, stream, "What is new today? #fake:web_search=2", [{**WEB_SEARCH, "max_uses": 3}])
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 2 and message.usage.server_tool_use.web_fetch_requests == 0
    # the pass-through hands over Anthropic's own message: the server tool blocks come back as sent
    assert [b.type for b in message.content] == ["server_tool_use", "web_search_tool_result"] * 2 + ["text"]
    assert fake_anthropic.requests[-1].json["tools"] == [{**WEB_SEARCH, "max_uses": 3}]  # forwarded as sent

    expected = cost_nanos(message.usage.input_tokens, message.usage.output_tokens) + 2 * SEARCH_NANOS
    row = gw.request_row()
    assert row.cost_nanos == expected and not row.estimated
    assert row.tool_uses == '{"web_search":2}'
    assert '"server_tools":{"web_search":10000000,"web_fetch":0}' in row.prices
    assert row.hold_nanos >= 3 * SEARCH_NANOS + expected - 2 * SEARCH_NANOS  # the tool part of the hold: price x max_uses
    assert gw.credits(cust.email)["total_usage_nanos"] == expected
    assert gw.ledger_report().ok


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_missing_max_uses_is_capped_and_the_cap_forwarded(env, fake_anthropic: FakeAnthropicState, stream: bool):
    gw, _, client = env
    message = ask(client, stream, "Search a lot #fake:web_search=7", [WEB_SEARCH], max_tokens=600)
    assert fake_anthropic.requests[-1].json["tools"] == [{**WEB_SEARCH, "max_uses": 5}]  # the cap the hold covers
    assert message.usage.server_tool_use.web_search_requests == 5  # past max_uses: max_uses_exceeded, not counted
    row = gw.request_row()
    assert row.cost_nanos == cost_nanos(message.usage.input_tokens, message.usage.output_tokens) + 5 * SEARCH_NANOS


def test_the_hold_covers_price_times_max_uses(gateway: Harness, anthropic_url: str, fake_anthropic: FakeAnthropicState):
    gateway.channel("anthropic", anthropic_url, name="claude")
    cust = customer(gateway, credits_usd="0.02")  # tokens (~$0.005 for 300 output tokens) + one search fit; five do not
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as exc:
        ask(client, False, "hi #fake:web_search=1", [{**WEB_SEARCH, "max_uses": 5}], max_tokens=300)
    assert exc.value.status_code == 402 and exc.value.body["error"]["type"] == "billing_error"
    assert fake_anthropic.requests == []
    message = ask(client, False, "hi #fake:web_search=1", [{**WEB_SEARCH, "max_uses": 1}], max_tokens=300)
    client.close()
    assert message.usage.server_tool_use.web_search_requests == 1
    expected = cost_nanos(message.usage.input_tokens, message.usage.output_tokens) + SEARCH_NANOS
    assert gateway.credits(cust.email)["total_usage_nanos"] == expected


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_web_fetch_costs_tokens_only(env, fake_anthropic: FakeAnthropicState, stream: bool):
    gw, _, client = env
    message = ask(client, stream, "Read https://example.com/page-1 #fake:web_fetch=1", [WEB_FETCH])
    assert message.usage.server_tool_use.web_fetch_requests == 1
    assert fake_anthropic.requests[-1].json["tools"] == [WEB_FETCH]  # price 0: nothing to bound, forwarded as sent
    row = gw.request_row()
    assert row.cost_nanos == cost_nanos(message.usage.input_tokens, message.usage.output_tokens)
    assert row.tool_uses == '{"web_fetch":1}'


def test_a_server_tool_on_a_translated_route_is_dropped_not_run(env, fake_openai: FakeOpenAIState):
    """Unchanged translation: a non-Anthropic upstream cannot run Anthropic's server tools, so they are dropped
    (and cost nothing, since nothing ran them)."""
    gw, _, client = env
    message = client.messages.create(
        model="deepseek/deepseek-v4-pro", max_tokens=100, messages=[{"role": "user", "content": "hi"}], tools=[WEB_SEARCH]
    )
    assert message.usage.server_tool_use is None
    assert "tools" not in fake_openai.requests[-1].json
    row = gw.request_row()
    assert row.tool_uses is None and row.cost_nanos > 0


def test_searches_delivered_are_charged_when_the_usage_is_malformed(env):
    gw, _, client = env
    text_in = "news? #fake:web_search=2 #fake:bad_usage=negative"
    with client.messages.stream(model=MODEL, max_tokens=400, messages=[{"role": "user", "content": text_in}],
                                tools=[WEB_SEARCH]) as events:
        final = events.get_final_message()
    delivered = "".join(b.text if b.type == "text" else json.dumps(b.input) for b in final.content
                        if b.type in ("text", "server_tool_use"))
    row = gw.request_row()
    assert row.estimated and row.tool_uses == '{"web_search":2}'
    assert row.cost_nanos == cost_nanos(8 + -(-len(text_in) // 4), -(-len(delivered) // 4)) + 2 * SEARCH_NANOS


def test_a_client_that_leaves_after_a_search_still_pays_for_it(env):
    """Leaving as soon as the search results arrive (before the usage) must not make the search free."""
    gw, _, client = env
    content = "news? #fake:web_search=3 #fake:tokens=40 #fake:delay=0.05"
    with client.messages.stream(model=MODEL, max_tokens=400, messages=[{"role": "user", "content": content}],
                                tools=[WEB_SEARCH]) as events:
        for event in events:
            if event.type == "content_block_start" and event.content_block.type == "web_search_tool_result":
                break
    deadline = time.monotonic() + 20
    while (row := gw.request_row()).state == "held":
        assert time.monotonic() < deadline, "the request was never settled"
        time.sleep(0.05)
    searches = json.loads(row.tool_uses)["web_search"]
    assert row.status == "client_closed" and row.estimated and 1 <= searches <= 3
    assert row.cost_nanos > searches * SEARCH_NANOS


def test_tool_uses_are_recorded_on_both_databases(database_url: str, make_gateway, anthropic_url: str):
    gw = make_gateway(database_url)
    gw.channel("anthropic", anthropic_url, name="claude")
    cust = customer(gw, credits_usd="5")
    client = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    message = ask(client, False, "news? #fake:web_search=1", [{**WEB_SEARCH, "max_uses": 2}])
    client.close()
    row = gw.request_row()
    assert row.tool_uses == '{"web_search":1}'
    assert row.cost_nanos == cost_nanos(message.usage.input_tokens, message.usage.output_tokens) + SEARCH_NANOS
    assert gw.ledger_report().ok
