"""The same cases against every chat adapter, through /chat/completions and the official OpenAI SDK."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from tests.conformance.providers import PROVIDERS, ProviderCase
from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.billing.cost import usage_cost
from tokenhub.money import format_usd
from tokenhub.tokens import Usage

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.name)
def env(request: pytest.FixtureRequest, gateway: Harness):
    case: ProviderCase = request.param
    url = request.getfixturevalue(case.url_fixture)
    state = request.getfixturevalue(case.state_fixture)
    gateway.channel(case.provider, url + ("/v1" if case.name == "openai" and not url.endswith("/v1") else ""), name=f"c-{case.name}")
    cust = customer(gateway, credits_usd="50")
    return case, gateway, cust, gateway.client(cust.key), state


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_plain_text(env):
    case, gw, cust, client, _ = env
    reply = client.chat.completions.create(model=case.model, messages=user("hello"))
    assert reply.choices[0].message.content == "Hello! This is a fake reply."
    assert reply.choices[0].finish_reason == "stop" and reply.model == case.model
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_system_prompt_and_multi_turn(env):
    case, gw, cust, client, state = env
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "and again"}]
    reply = client.chat.completions.create(model=case.model, messages=messages)
    assert reply.choices[0].message.content
    sent = json.dumps(state.requests[-1].json)
    assert "You are terse." in sent and "Hello." in sent and "and again" in sent


def test_image_input(env):
    case, gw, cust, client, state = env
    case.requires("vision")
    content = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    assert client.chat.completions.create(model=case.model, messages=[{"role": "user", "content": content}]).choices[0].message.content
    assert PNG in json.dumps(state.requests[-1].json)


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tools_and_result_round_trip(env, stream: bool):
    case, gw, cust, client, state = env
    case.requires("tools")
    if stream:
        case.requires("stream")
    messages = user("weather in Paris and Rome? " + case.say("tools"))
    if stream:
        with client.chat.completions.stream(model=case.model, messages=messages, tools=TOOLS) as s:
            first = s.get_final_completion()
    else:
        first = client.chat.completions.create(model=case.model, messages=messages, tools=TOOLS)
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert len({c.id for c in calls}) == 2
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'})
    second = client.chat.completions.create(model=case.model, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content


def test_reasoning(env):
    case, gw, cust, client, _ = env
    case.requires("reasoning")
    reply = client.chat.completions.create(model=case.model, messages=user("think " + case.say("reasoning")),
                                           reasoning_effort="low", max_tokens=4000)
    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens >= 5


def test_json_schema_output(env):
    case, gw, cust, client, state = env
    case.requires("json_schema")
    client.chat.completions.create(model=case.model, messages=user("answer as JSON"),
                                   response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}})
    assert case.json_schema_sent(state.requests[-1].json) == SCHEMA


def test_stop_sequences(env):
    case, gw, cust, client, state = env
    client.chat.completions.create(model=case.model, messages=user("count"), stop=["END", "STOP"])
    assert case.stop_sent(state.requests[-1].json) == ["END", "STOP"]


def test_length_cut_off(env):
    case, gw, cust, client, _ = env
    assert client.chat.completions.create(model=case.model, messages=user(case.say("cut"))).choices[0].finish_reason == "length"


@pytest.mark.parametrize(("code", "status"), [(429, 429), (500, 502), (503, 503)])
def test_upstream_errors(env, code: int, status: int):
    case, gw, cust, client, _ = env
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model=case.model, messages=user(f"#fake:status={code}"))
    assert exc.value.status_code == status
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_usage_and_cost(env, stream: bool):
    case, gw, cust, client, _ = env
    if stream:
        case.requires("stream")
    model = gw.gw.directory.catalog.get(case.model)
    messages = user("a b c d e f " + case.say("cached"))
    if stream:
        chunks = list(client.chat.completions.create(model=case.model, messages=messages, stream=True, stream_options={"include_usage": True}))
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(model=case.model, messages=messages).usage
    assert usage.prompt_tokens_details.cached_tokens == 3
    charged = usage_cost(Usage(usage.prompt_tokens, usage.completion_tokens, cached_tokens=3,
                               reasoning_tokens=(usage.completion_tokens_details.reasoning_tokens or 0)), model.pricing)
    assert Decimal(str(usage.model_extra["cost"])) == Decimal(format_usd(charged))
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == charged
    assert gw.ledger_report().ok
