"""POST /api/v1/responses with the official openai SDK, for every upstream protocol (translated), and the
stored responses: previous_response_id, retrieve, delete, input_items — per account."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.money import format_usd

MODELS = ["openai/gpt-4.1", "anthropic/claude-sonnet-4-6", "google/gemini-2.5-pro"]
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather by city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]  # fmt: skip


@pytest.fixture
def env(gateway: Harness, upstream_url: str, anthropic_url: str, gemini_url: str):
    gateway.channel("openai", upstream_url, name="oa")
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("gemini", gemini_url, name="gm")
    cust = customer(gateway, credits_usd="20")
    return gateway, cust, gateway.client(cust.key)


def charged(gw: Harness, request_id: str) -> int:
    gw.flush()
    row = gw.request_row(request_id)
    assert row.endpoint == "responses" and row.state == "settled"
    return row.cost_nanos


@pytest.mark.parametrize("model", MODELS)
def test_create(env, model):
    gw, _, client = env
    raw = client.responses.with_raw_response.create(model=model, instructions="Be brief.", input="hello", max_output_tokens=200)
    response = raw.parse()
    assert response.status == "completed" and response.model == model
    assert response.output_text == "Hello! This is a fake reply."
    assert response.id.startswith("resp_")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    cost = charged(gw, raw.headers["x-request-id"])
    assert Decimal(str(response.usage.model_extra["cost"])) == Decimal(format_usd(cost)) and cost > 0
    assert gw.ledger_report().ok


@pytest.mark.parametrize("model", MODELS)
def test_stream(env, model):
    gw, _, client = env
    with client.responses.stream(model=model, input="hello #fake:tokens=7", max_output_tokens=200) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds
    assert len(final.output_text.split()) == 7
    assert final.usage.model_extra["cost"] > 0
    gw.flush()
    assert gw.ledger_report().ok


@pytest.mark.parametrize("model", MODELS)
def test_function_calls_round_trip(env, model):
    _, _, client = env
    first = client.responses.create(model=model, input="weather in Paris? #fake:tools", tools=TOOLS, max_output_tokens=300)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and json.loads(calls[0].arguments)
    follow = client.responses.create(
        model=model, tools=TOOLS, max_output_tokens=300,
        input=[{"role": "user", "content": "weather in Paris?"}, *[c.model_dump(exclude_none=True) for c in calls],
               *[{"type": "function_call_output", "call_id": c.call_id, "output": '{"sky": "clear"}'} for c in calls]],
    )  # fmt: skip
    assert follow.status == "completed" and follow.output_text


def test_streamed_function_call_events(env):
    _, _, client = env
    with client.responses.stream(model="openai/gpt-4.1", input="weather? #fake:tools", tools=TOOLS) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    assert final.output and {item.type for item in final.output} == {"function_call"}


def test_previous_response_id_continues_the_conversation_for_its_account_only(env, upstream_url, fake_openai):
    gw, _, client = env
    first = client.responses.create(model="openai/gpt-4.1", input="remember the word zebra")
    second = client.responses.create(model="anthropic/claude-sonnet-4-6", previous_response_id=first.id, input="which word?")
    assert second.previous_response_id == first.id and second.output_text
    third = client.responses.create(model="openai/gpt-4.1", previous_response_id=second.id, input="and again?")
    sent = fake_openai.requests[-1]  # an OpenAI channel: the Responses body itself, the stored conversation first
    assert sent.path.endswith("/responses") and sent.json["store"] is False and "previous_response_id" not in sent.json
    assert [i.get("role") for i in sent.json["input"]] == ["user", "assistant", "user", "assistant", "user"]
    assert sent.json["input"][0]["content"][0]["text"] == "remember the word zebra" and third.status == "completed"
    assert not any("id" in item for item in sent.json["input"])  # with store false OpenAI resolves no item id

    other = gw.client(customer(gw, "other@example.com").key)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="openai/gpt-4.1", previous_response_id=first.id, input="steal")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(first.id)
    assert client.responses.retrieve(first.id).output_text == first.output_text


def test_retrieve_input_items_and_delete(env):
    _, _, client = env
    response = client.responses.create(model="openai/gpt-4.1", input=[{"role": "user", "content": "one"},
                                                                      {"role": "user", "content": "two"}])  # fmt: skip
    assert client.responses.retrieve(response.id).id == response.id
    items = client.responses.input_items.list(response.id, order="asc")
    assert [item.content[0].text if hasattr(item, "content") else None for item in items.data] == ["one", "two"]
    page = client.responses.input_items.list(response.id, limit=1)
    assert len(page.data) == 1 and page.has_more
    deleted = client.responses.delete(response.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_channels_take_the_responses_body_itself(env, fake_openai, stream):
    """Pass-through: the client's own body at the channel's /responses (encrypted reasoning included), the answer
    relayed with the catalog's model id and the cost; billed from the upstream's usage."""
    gw, _, client = env
    options = {"model": "openai/gpt-4.1", "input": "think #fake:reasoning=3", "include": ["reasoning.encrypted_content"],
               "reasoning": {"effort": "low"}}  # fmt: skip
    if stream:
        with client.responses.stream(**options) as events:
            kinds = [e.type for e in events]
            response = events.get_final_response()
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    else:
        response = client.responses.create(**options)
    sent = fake_openai.requests[-1]
    assert sent.path.endswith("/v1/responses") and sent.json["include"] == ["reasoning.encrypted_content"]
    assert sent.json["model"] == "gpt-4.1" and sent.json["store"] is False and sent.json["max_output_tokens"]
    reasoning = [item for item in response.output if item.type == "reasoning"]
    assert reasoning and reasoning[0].encrypted_content  # round-trips to OpenAI on the next turn
    assert response.model == "openai/gpt-4.1" and response.output_text == "Hello! This is a fake reply."
    assert response.usage.output_tokens_details.reasoning_tokens == 3
    gw.flush()
    row = gw.request_row()
    assert Decimal(str(response.usage.model_extra["cost"])) == Decimal(format_usd(row.cost_nanos)) and row.cost_nanos > 0
    follow = client.responses.create(model="openai/gpt-4.1", previous_response_id=response.id, input="and then?")
    assert follow.status == "completed"
    replayed = fake_openai.requests[-1].json["input"]
    assert replayed[1]["type"] == "reasoning" and replayed[1]["encrypted_content"] == reasoning[0].encrypted_content
    assert client.responses.retrieve(response.id).id == response.id


def test_a_responses_only_model_is_served_through_responses_for_a_chat_client(env, fake_openai):
    gw, _, _ = env
    chat = gw.client(customer(gw, "chatter@example.com", credits_usd="100").key)
    reply = chat.chat.completions.create(model="openai/gpt-5-pro", messages=[{"role": "user", "content": "hello"}], max_tokens=500)
    assert fake_openai.requests[-1].path.endswith("/v1/responses") and fake_openai.requests[-1].json["model"] == "gpt-5-pro"
    assert reply.choices[0].message.content == "Hello! This is a fake reply." and reply.model == "openai/gpt-5-pro"
    stream = chat.chat.completions.create(model="openai/gpt-5-pro", messages=[{"role": "user", "content": "weather? #fake:tools"}],
                                          tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
                                          stream=True, stream_options={"include_usage": True}, max_tokens=500)  # fmt: skip
    chunks = list(stream)
    names = [c.function.name for ch in chunks for choice in ch.choices for c in choice.delta.tool_calls or () if c.function.name]
    assert names and chunks[-1].usage.model_extra["cost"] > 0
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["tool_calls"]
    gw.flush()
    assert gw.ledger_report().ok


def test_store_false_keeps_nothing(env):
    _, _, client = env
    response = client.responses.create(model="openai/gpt-4.1", input="hello", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_built_in_tools_are_not_offered_to_a_translated_upstream(env, fake_anthropic):
    """web_search and the like run and bill at OpenAI: the model is not offered them (Codex always lists web_search)."""
    _, _, client = env
    client.responses.create(model="anthropic/claude-sonnet-4-6", input="hi", tools=[{"type": "web_search"}, *TOOLS])
    assert [t["name"] for t in fake_anthropic.requests[-1].json["tools"]] == ["get_weather"]


def test_structured_output(env, fake_openai):
    _, _, client = env
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}
    client.responses.create(model="openai/gpt-4.1", input="a city",
                            text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}})  # fmt: skip
    sent = fake_openai.requests[-1].json  # an OpenAI channel: passed through as it came
    assert sent["text"] == {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "openai/gpt-4.1"}, "input"),
    ({"model": "openai/gpt-4.1", "input": 5}, "input"),
    ({"model": "openai/gpt-4.1", "input": "hi", "tools": ["web_search"]}, "tools[0]"),
    ({"model": "openai/gpt-4.1", "input": [{"type": "mystery"}]}, "input[0].type"),
    ({"model": "openai/gpt-4.1", "input": "hi", "bogus": 1}, "bogus"),
    ({"input": "hi"}, "model"),
])  # fmt: skip
def test_bad_input_is_a_400_in_openais_format(env, body, param):
    gw, cust, client = env
    with pytest.raises(openai.BadRequestError) as exc:
        client.post("/responses", body=body, cast_to=object)
    assert exc.value.body["param"] == param
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0
