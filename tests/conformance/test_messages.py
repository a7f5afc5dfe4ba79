"""The same cases against every chat adapter, through /api/v1/messages and the official anthropic SDK."""

from __future__ import annotations

import json

import anthropic
import pytest

from tests.conformance.providers import PROVIDERS, ProviderCase
from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.billing.cost import usage_cost
from tokenhub.tokens import Usage

TOOLS = [{"name": "get_weather", "description": "Weather by city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": False}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.name)
def env(request: pytest.FixtureRequest, gateway: Harness):
    case: ProviderCase = request.param
    url = request.getfixturevalue(case.url_fixture)
    state = request.getfixturevalue(case.state_fixture)
    gateway.channel(case.provider, url, name=f"c-{case.name}")
    cust = customer(gateway, credits_usd="50")
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    yield case, gateway, cust, client, state
    client.close()


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def text_of(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def test_plain_text_and_system(env):
    case, gw, cust, client, state = env
    message = client.messages.create(model=case.model, max_tokens=200, system="You are terse.", messages=user("hello"))
    assert text_of(message) == "Hello! This is a fake reply." and message.stop_reason == "end_turn"
    assert "You are terse." in json.dumps(state.requests[-1].json)


def test_multi_turn_and_image(env):
    case, gw, cust, client, state = env
    case.requires("vision")
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": [{"type": "text", "text": "and this?"},
                                             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]
    assert text_of(client.messages.create(model=case.model, max_tokens=200, messages=messages))
    sent = json.dumps(state.requests[-1].json)
    assert "Hello." in sent and PNG in sent


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tools_and_result_round_trip(env, stream: bool):
    case, gw, cust, client, _ = env
    case.requires("tools")
    if stream:
        case.requires("stream")
    messages = user("weather in Paris and Rome? " + case.say("tools"))
    if stream:
        with client.messages.stream(model=case.model, max_tokens=500, messages=messages, tools=TOOLS) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=case.model, max_tokens=500, messages=messages, tools=TOOLS)
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use"
    assert [u.input for u in uses] == [{"city": "Paris"}, {"city": "Rome"}]
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "18C"} for u in uses]})
    second = client.messages.create(model=case.model, max_tokens=500, messages=messages, tools=TOOLS)
    assert text_of(second)


def test_reasoning(env):
    case, gw, cust, client, _ = env
    case.requires("reasoning")
    message = client.messages.create(model=case.model, max_tokens=4000, messages=user("think " + case.say("reasoning")),
                                     thinking={"type": "enabled", "budget_tokens": 2000})
    assert text_of(message)
    assert message.usage.output_tokens >= 5


def test_json_schema_output(env):
    case, gw, cust, client, state = env
    case.requires("json_schema")
    client.messages.create(model=case.model, max_tokens=200, messages=user("answer as JSON"),
                           extra_body={"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}})
    body = state.requests[-1].json
    sent = case.json_schema_sent(body) if case.name != "anthropic" else body["output_config"]["format"]["schema"]
    assert sent is not None and sent["properties"] == SCHEMA["properties"]


def test_stop_sequences_and_length(env):
    case, gw, cust, client, state = env
    client.messages.create(model=case.model, max_tokens=200, messages=user("count"), stop_sequences=["END", "STOP"])
    assert case.stop_sent(state.requests[-1].json) == ["END", "STOP"]
    assert client.messages.create(model=case.model, max_tokens=200, messages=user(case.say("cut"))).stop_reason == "max_tokens"


@pytest.mark.parametrize(("code", "status"), [(429, 429), (500, 502)])
def test_upstream_errors(env, code: int, status: int):
    case, gw, cust, client, _ = env
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model=case.model, max_tokens=50, messages=user(f"#fake:status={code}"))
    assert exc.value.status_code == status and exc.value.body["type"] == "error"
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
        with client.messages.stream(model=case.model, max_tokens=200, messages=messages) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(model=case.model, max_tokens=200, messages=messages)
    u = message.usage
    assert u.cache_read_input_tokens == 3
    prompt = u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    gw.flush()
    charged = gw.credits(cust.email)["total_usage_nanos"]
    # what the gateway charged is what the reported usage costs at the catalog's prices
    expected = usage_cost(Usage(prompt, u.output_tokens, cached_tokens=3, cache_write_tokens=u.cache_creation_input_tokens or 0), model.pricing)
    assert charged == expected
    assert gw.ledger_report().ok
