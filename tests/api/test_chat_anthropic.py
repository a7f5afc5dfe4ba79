"""anthropic/* models through /chat/completions with the OpenAI SDK: the client cannot tell."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.money import format_usd, tokens_cost, usd_to_nanos
from tokenhub.simulator.anthropic import FakeAnthropicState

MODEL = "anthropic/claude-sonnet-4-6"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
def setup(gateway: Harness, anthropic_url: str):
    gateway.channel("anthropic", anthropic_url, name="claude")
    cust = customer(gateway)
    return gateway, cust, gateway.client(cust.key)


def sonnet_cost(uncached: int, cache_read: int, cache_write: int, output: int) -> int:
    """Claude Sonnet 4.6 list prices: $3 input, $0.30 cache read, $3.75 cache write, $15 output per 1M."""
    return tokens_cost([(uncached, usd_to_nanos("3")), (cache_read, usd_to_nanos("0.3")),
                        (cache_write, usd_to_nanos("3.75")), (output, usd_to_nanos("15"))])


def test_plain_completion_with_system_messages(setup, fake_anthropic: FakeAnthropicState):
    gw, cust, client = setup
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"},
                  {"role": "system", "content": "And kind."}],
    )
    assert reply.choices[0].message.content == "Hello! This is a fake reply."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == MODEL
    sent = fake_anthropic.requests[-1]
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "sk-upstream"
    assert sent.json["model"] == "claude-sonnet-4-6" and sent.json["max_tokens"] > 0
    system = sent.json["system"]
    system_text = system if isinstance(system, str) else " ".join(b["text"] for b in system)
    assert "Be brief." in system_text and "And kind." in system_text
    assert [m["role"] for m in sent.json["messages"]] == ["user"]


def test_cache_tokens_are_billed_each_at_their_price(setup):
    gw, cust, client = setup
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "one two three four five six #fake:cache_read=4 #fake:cache_write=2"}]
    )
    usage = reply.usage
    # OpenAI semantics: prompt_tokens includes the cache reads and writes, cached_tokens are the reads
    assert usage.prompt_tokens_details.cached_tokens == 4
    uncached = usage.prompt_tokens - 4 - 2
    expected = sonnet_cost(uncached, 4, 2, usage.completion_tokens)
    assert Decimal(str(usage.model_extra["cost"])) == Decimal(format_usd(expected))
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == expected


def test_streamed_tool_calls_reassemble_with_increasing_indexes(setup):
    gw, cust, client = setup
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "weather? #fake:tools"}],
                                                 tools=TOOLS, stream=True, stream_options={"include_usage": True}))
    indexes = [tc.index for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert sorted(set(indexes)) == [0, 1]
    assert all(c.choices[0].index == 0 for c in chunks if c.choices)
    with client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "weather? #fake:tools"}], tools=TOOLS) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert final.choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None and Decimal(str(chunks[-1].usage.model_extra["cost"])) > 0


def test_tool_loop_with_thinking_keeps_signatures(setup, fake_anthropic: FakeAnthropicState):
    """A client that echoes the assistant message back gets a valid second turn (signed thinking replayed)."""
    gw, cust, client = setup
    messages = [{"role": "user", "content": "weather in Paris and Rome? #fake:tools #fake:thinking=3"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, reasoning_effort="low", max_tokens=4000)
    message = first.choices[0].message
    assert message.tool_calls and message.model_extra.get("reasoning_content")
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, reasoning_effort="low", max_tokens=4000)
    assert second.choices[0].message.content
    replayed = fake_anthropic.requests[-1].json
    assistant = [m for m in replayed["messages"] if m["role"] == "assistant"][-1]
    assert assistant["content"][0]["type"] == "thinking" and assistant["content"][0]["signature"]
    assert replayed["thinking"]


@pytest.mark.parametrize(("directive", "status", "code"), [("status=529", 503, "upstream_overloaded"),
                                                           ("status=429", 429, "upstream_rate_limited"),
                                                           ("status=400", 400, "upstream_bad_request")])
def test_anthropic_errors_map_to_openai_statuses(setup, directive, status, code):
    gw, cust, client = setup
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"#fake:{directive}"}])
    assert exc.value.status_code == status and exc.value.code == code
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0


def test_midstream_error_event_reaches_the_sdk(setup):
    gw, cust, client = setup
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:tokens=20 #fake:error_mid"}], stream=True):
            pass
    gw.flush()
    assert gw.credits(cust.email)["held_nanos"] == 0
    assert gw.ledger_report().ok


def test_length_and_refusal_finish_reasons(setup):
    _, _, client = setup
    assert client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:max_tokens"}]).choices[0].finish_reason == "length"
    assert client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:refusal"}]).choices[0].finish_reason == "content_filter"
