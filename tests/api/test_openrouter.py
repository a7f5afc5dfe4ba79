"""OpenRouter's request fields on /chat/completions, through the openai SDK: understood, and never forwarded.

The OpenAI fake refuses any parameter Chat Completions does not have ("Unrecognized request argument
supplied", as the real API does), so every answer here also proves nothing leaked upstream.
"""

from __future__ import annotations

import socket
from decimal import Decimal

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.billing.cost import usage_cost
from tokenhub.money import format_usd
from tokenhub.simulator.anthropic import FakeAnthropicState
from tokenhub.simulator.gemini import FakeGeminiState
from tokenhub.simulator.openai import FakeOpenAIState
from tokenhub.tokens import Usage

EVERYTHING = {
    "provider": {"order": ["deepseek"], "allow_fallbacks": True, "data_collection": "deny", "sort": "price"},
    "reasoning": {"effort": "high"},
    "usage": {"include": True},
    "transforms": ["middle-out"],
    "route": "fallback",
}


def closed_port_url() -> str:
    """An address nothing listens on: a channel there fails before answering (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def env(gateway: Harness, upstream_url: str, anthropic_url: str, gemini_url: str):
    gateway.channel("deepseek", upstream_url, name="ds-a")
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("gemini", gemini_url, name="gm")
    cust = customer(gateway, credits_usd="20")
    client = gateway.client(cust.key)
    return gateway, cust, client


def ask(client: openai.OpenAI, model: str, text: str = "hello", **extra_body):
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=300, extra_body=extra_body
    )


def test_openrouter_fields_never_reach_an_openai_protocol_upstream(env, fake_openai: FakeOpenAIState):
    gw, _, client = env
    reply = ask(client, "deepseek/deepseek-v4-pro", **EVERYTHING).parse()
    assert reply.choices[0].message.content == "Hello! This is a fake reply."
    sent = fake_openai.requests[-1].json
    assert not {"models", "provider", "reasoning", "usage", "transforms", "route"} & set(sent)
    assert sent["reasoning_effort"] == "high"


def test_the_fake_refuses_what_the_real_api_refuses(upstream_url: str, fake_openai: FakeOpenAIState):
    """The check above can fail: sent straight to the fake, an OpenRouter field is a 400."""
    direct = openai.OpenAI(base_url=upstream_url, api_key="sk-upstream", max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        direct.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"provider": {"order": ["x"]}})  # fmt: skip
    assert exc.value.body["message"] == "Unrecognized request argument supplied: provider"


@pytest.mark.parametrize(("reasoning", "effort"), [({"effort": "low"}, "low"), ({"max_tokens": 20000}, "high"),
                                                   ({"max_tokens": 4000}, "medium"), ({"enabled": False}, "none")])  # fmt: skip
def test_reasoning_becomes_each_protocols_own_control(env, fake_anthropic: FakeAnthropicState, fake_gemini: FakeGeminiState,
                                                      fake_openai: FakeOpenAIState, reasoning, effort):  # fmt: skip
    _, _, client = env
    ask(client, "deepseek/deepseek-v4-pro", reasoning=reasoning)
    assert fake_openai.requests[-1].json["reasoning_effort"] == effort
    ask(client, "anthropic/claude-sonnet-4-6", reasoning=reasoning)
    sent = fake_anthropic.requests[-1].json
    assert "reasoning" not in sent
    if effort == "none":
        assert "thinking" not in sent
    else:
        assert sent["thinking"]["type"] == "adaptive" and sent["output_config"]["effort"] == effort
    ask(client, "google/gemini-2.5-pro", reasoning=reasoning)
    config = fake_gemini.requests[-1].json["generationConfig"]
    assert "reasoning" not in fake_gemini.requests[-1].json
    assert "thinkingConfig" in config


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_exclude_hides_the_reasoning_but_bills_it(env, stream: bool):
    gw, cust, client = env
    messages = [{"role": "user", "content": "think #fake:reasoning=5 #fake:tokens=4"}]
    options = {"model": "deepseek/deepseek-v4-pro", "messages": messages, "max_tokens": 300}
    shown = client.chat.completions.create(**options, stream=stream, extra_body={"reasoning": {"exclude": False}})
    hidden = client.chat.completions.create(**options, stream=stream, extra_body={"reasoning": {"exclude": True}})
    if stream:
        shown_chunks, hidden_chunks = list(shown), list(hidden)
        assert any(getattr(c.choices[0].delta, "reasoning_content", None) for c in shown_chunks if c.choices)
        assert not any(getattr(c.choices[0].delta, "reasoning_content", None) for c in hidden_chunks if c.choices)
        text = "".join(c.choices[0].delta.content or "" for c in hidden_chunks if c.choices)
        assert len(text.split()) == 4
    else:
        assert shown.choices[0].message.model_extra.get("reasoning_content")
        assert "reasoning_content" not in hidden.choices[0].message.model_extra
        assert hidden.usage.completion_tokens == shown.usage.completion_tokens  # generated, and billed, all the same
    gw.flush()
    assert gw.ledger_report().ok


def test_usage_include_asks_for_the_usage_chunk(env):
    _, _, client = env
    stream = client.chat.completions.create(model="deepseek/deepseek-v4-pro", messages=[{"role": "user", "content": "hi"}],
                                            stream=True, extra_body={"usage": {"include": True}})  # fmt: skip
    last = list(stream)[-1]
    assert last.usage is not None and last.usage.model_extra["cost"] > 0


def test_models_fall_back_in_order_and_bill_the_model_that_answered(database_url: str, make_gateway, upstream_url: str):
    """On both databases: the settlement records the model that answered, at its prices."""
    gw = make_gateway(database_url)
    gw.channel("openai", closed_port_url(), name="down")  # gpt-4.1's only channel refuses connections
    gw.channel("deepseek", upstream_url, name="ds-a")
    client = gw.client(customer(gw, credits_usd="20").key)
    raw = ask(client, "openai/gpt-4.1", models=["openai/gpt-4.1", "deepseek/deepseek-v4-flash"])
    reply = raw.parse()
    assert reply.model == "deepseek/deepseek-v4-flash"
    gw.flush()
    row = gw.request_row(raw.headers["x-request-id"])
    assert row.model == "deepseek/deepseek-v4-flash" and row.state == "settled"
    assert row.prices == gw.gw.directory.prices_json["deepseek/deepseek-v4-flash"]
    flash = gw.gw.directory.catalog.get("deepseek/deepseek-v4-flash")
    usage = Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert row.cost_nanos == usage_cost(usage, flash.pricing) > 0  # billed at the model that answered
    assert Decimal(str(reply.usage.model_extra["cost"])) == Decimal(format_usd(row.cost_nanos))
    # the hold covered the dearer model (gpt-4.1 costs more per token than deepseek-v4-flash)
    gpt = gw.gw.directory.catalog.get("openai/gpt-4.1")
    assert row.hold_nanos >= usage_cost(Usage(reply.usage.prompt_tokens, 300), gpt.pricing) > row.cost_nanos
    assert gw.ledger_report().ok


def test_models_alone_name_the_first_choice(env):
    _, _, client = env
    reply = client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}],
                                           extra_body={"models": ["deepseek/deepseek-v4-pro"]})  # fmt: skip
    assert reply.model == "deepseek/deepseek-v4-pro"


def test_every_fallback_model_is_checked_against_the_key(env, gateway: Harness):
    gw, cust, _ = env
    limited = gw.client(gw.key(cust.email, models="deepseek/*"))
    with pytest.raises(openai.PermissionDeniedError):
        ask(limited, "deepseek/deepseek-v4-pro", models=["deepseek/deepseek-v4-pro", "anthropic/claude-sonnet-4-6"])


def test_provider_preferences_choose_the_channel(env, gateway: Harness, upstream_url: str):
    gw, _, client = env
    second = gw.channel("deepseek", upstream_url, name="ds-b")

    def channel_of(**prefs) -> int:
        raw = ask(client, "deepseek/deepseek-v4-pro", provider=prefs)
        gw.flush()
        return gw.request_row(raw.headers["x-request-id"]).channel_id

    assert {channel_of(only=["ds-b"]) for _ in range(4)} == {second["id"]}
    assert second["id"] not in {channel_of(ignore=["DS-B"]) for _ in range(4)}
    assert {channel_of(order=["ds-b", "ds-a"]) for _ in range(4)} == {second["id"]}


def test_allow_fallbacks_false_keeps_to_the_listed_providers(env, gateway: Harness):
    gw, _, client = env
    gw.channel("deepseek", closed_port_url(), name="ds-down", priority=10)  # tried first by priority
    reply = ask(client, "deepseek/deepseek-v4-pro").parse()  # fails over to ds-a
    assert reply.choices[0].message.content
    with pytest.raises(openai.APIStatusError) as exc:
        ask(client, "deepseek/deepseek-v4-pro", provider={"order": ["ds-down"], "allow_fallbacks": False})
    assert exc.value.status_code in (502, 503)
    with pytest.raises(openai.APIStatusError) as exc:
        ask(client, "deepseek/deepseek-v4-pro", provider={"only": ["nobody"]})
    assert exc.value.status_code == 503 and "provider preferences" in exc.value.message


@pytest.mark.parametrize("body", [{"models": "deepseek/deepseek-v4-pro"}, {"provider": {"sort": "fastest"}},
                                  {"reasoning": {"max_tokens": -1}}, {"usage": True}, {"provider": ["ds-a"]}])  # fmt: skip
def test_malformed_fields_are_a_400(env, body):
    _, _, client = env
    with pytest.raises(openai.BadRequestError) as exc:
        ask(client, "deepseek/deepseek-v4-pro", **body)
    assert exc.value.body["param"].split(".")[0] in body


def test_provider_sort_by_latency_and_throughput(env, gateway: Harness, upstream_url: str):
    """sort: latency | throughput orders the channels by what this gateway observed of them."""
    gw, _, client = env
    first = ask(client, "deepseek/deepseek-v4-pro")  # a real answer is observed: its time to first byte
    gw.flush()
    channel_a = gw.request_row(first.headers["x-request-id"]).channel_id
    assert gw.gw.health.speed(channel_a)[0] is not None
    channel_b = gw.channel("deepseek", upstream_url, name="ds-b")["id"]
    health = gw.gw.health
    for _ in range(20):  # the moving averages settle on these figures
        health.observe(channel_a, first_byte=0.5, tokens=1000, total=1.5)  # slow to start, fast after (1,000 tokens/s)
        health.observe(channel_b, first_byte=0.01, tokens=10, total=1.01)  # quick to start, slow after (10 tokens/s)

    def channel_of(sort: str) -> int:
        raw = ask(client, "deepseek/deepseek-v4-pro", provider={"sort": sort})
        gw.flush()
        return gw.request_row(raw.headers["x-request-id"]).channel_id

    assert {channel_of("latency") for _ in range(3)} == {channel_b}
    assert {channel_of("throughput") for _ in range(3)} == {channel_a}
