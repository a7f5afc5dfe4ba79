"""POST /api/v1/chat/completions through the official OpenAI SDK, against the fake upstream."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, cost_nanos, customer, priced_model
from tokenhub import __version__
from tokenhub.money import format_usd
from tokenhub.simulator.openai import FakeOpenAIState

UPSTREAM_MODEL = "upstream-priced"


@pytest.fixture
def setup(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    return gateway, cust, gateway.client(cust.key)


def test_completion_is_relayed_and_charged_exactly(setup, fake_openai: FakeOpenAIState):
    gw, cust, client = setup
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "say hello to the world"}], temperature=0.3, max_tokens=50
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello! This is a fake reply."
    assert completion.model == MODEL  # the id the client asked for, not the upstream's
    # prompt: 3 + 5 words = 8 tokens; completion: 6 pieces
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (8, 6)
    expected = cost_nanos(8, 6)  # 8*3 + 6*15 = 114 $/M-tokens -> 0.000114 USD
    assert expected == 114_000
    assert Decimal(str(completion.usage.model_extra["cost"])) == Decimal(format_usd(expected))
    request_id = raw.headers["x-request-id"]
    assert request_id.startswith("gen-")

    sent = fake_openai.requests[-1]
    assert sent.json["model"] == UPSTREAM_MODEL
    assert sent.json["temperature"] == 0.3 and sent.json["max_tokens"] == 50
    assert sent.headers["authorization"] == "Bearer sk-upstream"
    assert sent.headers["user-agent"] == f"TokenHub/{__version__}"  # neither the client's SDK nor aiohttp's default

    gw.flush()
    assert gw.credits(cust.email)["balance_nanos"] == 10_000_000_000 - expected
    assert gw.ledger_report().ok


def test_stream_without_usage_request_hides_usage_but_bills(setup, fake_openai: FakeOpenAIState):
    gw, cust, client = setup
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "one two three"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! This is a fake reply."
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "the usage-only chunk must not reach a client that did not ask"
    assert all(c.model == MODEL for c in chunks)
    assert fake_openai.requests[-1].json["stream_options"] == {"include_usage": True}
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == cost_nanos(6, 6)


def test_stream_with_usage_reports_cost_in_final_chunk(setup):
    gw, cust, client = setup
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "hi #fake:tokens=40 #fake:cached=4"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    final = chunks[-1]
    assert final.choices == [] and final.usage is not None
    assert final.usage.completion_tokens == 40
    assert final.usage.prompt_tokens_details.cached_tokens == 4
    expected = cost_nanos(final.usage.prompt_tokens, 40, cached=4)
    assert Decimal(str(final.usage.model_extra["cost"])) == Decimal(format_usd(expected))
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == expected


def test_usage_on_the_last_content_chunk_is_stripped_for_clients_that_did_not_ask(setup):
    gw, cust, client = setup
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x #fake:usage_on_last"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == cost_nanos(5, 6)  # 3 + 2 words


def test_streamed_parallel_tool_calls_reassemble(setup):
    _, _, client = setup
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "weather? #fake:tools"}], tools=tools
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.model == MODEL


def test_tool_calls_non_streaming(setup):
    _, _, client = setup
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:tools"}])
    calls = completion.choices[0].message.tool_calls
    assert len(calls) == 2 and json.loads(calls[1].function.arguments) == {"city": "Rome"}


def test_reasoning_and_cached_tokens_each_at_their_price(setup):
    gw, cust, client = setup
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a b c #fake:reasoning=5 #fake:deepseek_usage #fake:cached=3"}]
    )
    usage = completion.usage
    assert usage.completion_tokens_details.reasoning_tokens == 5
    assert usage.completion_tokens == 11  # 5 reasoning + 6 content
    expected = cost_nanos(usage.prompt_tokens, 11, cached=3)
    assert Decimal(str(usage.model_extra["cost"])) == Decimal(format_usd(expected))
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == expected


def test_upstream_model_id_is_rewritten_in_stream_and_body(setup):
    _, _, client = setup
    msg = [{"role": "user", "content": "#fake:echo_model=upstream-priced-2026-01-01"}]
    assert client.chat.completions.create(model=MODEL, messages=msg).model == MODEL
    assert {c.model for c in client.chat.completions.create(model=MODEL, messages=msg, stream=True)} == {MODEL}


def test_unprefixed_model_name_resolves(setup, fake_openai: FakeOpenAIState):
    _, _, client = setup
    assert client.chat.completions.create(model="priced", messages=[{"role": "user", "content": "x"}]).model == MODEL


@pytest.mark.parametrize("directive", ["keepalive", "crlf"])
def test_stream_framing_variants_parse(setup, directive: str):
    _, _, client = setup
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"#fake:{directive}"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! This is a fake reply."


def test_every_openai_protocol_vendor_in_the_catalog_is_served(gateway: Harness, upstream_url: str, fake_openai: FakeOpenAIState):
    """One channel per OpenAI-protocol vendor, each pointed at the fake; every catalog model answers."""
    from tokenhub.vendors import PROVIDERS

    vendors = [p.name for p in PROVIDERS.values() if p.protocol == "openai" and p.base_url]
    for vendor in vendors:
        gateway.channel(vendor, upstream_url, name=f"ch-{vendor}")
    cust = customer(gateway, credits_usd="100")
    client = gateway.client(cust.key)
    models = [m for m in gateway.gw.directory.catalog.models.values() if m.provider in vendors and m.kind == "chat"]
    assert len(models) >= 20
    for model in models:
        reply = client.chat.completions.create(model=model.id, messages=[{"role": "user", "content": "hi"}], max_tokens=20)
        assert reply.model == model.id
        assert fake_openai.requests[-1].json["model"] == model.upstream_id
