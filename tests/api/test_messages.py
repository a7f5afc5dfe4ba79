"""POST /api/v1/messages with the official anthropic SDK: native Claude (pass-through) and every other model (translated)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

import anthropic
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.simulator.anthropic import FakeAnthropicState
from tokenhub.simulator.openai import FakeOpenAIState

TOOLS = [{"name": "get_weather", "description": "Weather by city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture
def env(gateway: Harness, anthropic_url: str, upstream_url: str, gemini_url: str):
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("deepseek", upstream_url, name="ds")
    gateway.channel("gemini", gemini_url, name="gm")
    cust = customer(gateway, credits_usd="20")
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    yield gateway, cust, client
    client.close()


MODELS = ["claude-sonnet-4-6", "deepseek/deepseek-v4-pro", "google/gemini-2.5-pro"]


@pytest.mark.parametrize("model", MODELS)
def test_create(env, model):
    gw, cust, client = env
    message = client.messages.create(model=model, max_tokens=200, system="Be brief.", messages=[{"role": "user", "content": "hello"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Hello! This is a fake reply."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.model.endswith(model.split("/")[-1])
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] > 0
    assert gw.ledger_report().ok


@pytest.mark.parametrize("model", MODELS)
def test_stream_text(env, model):
    _, _, client = env
    with client.messages.stream(model=model, max_tokens=200, messages=[{"role": "user", "content": "hello #fake:tokens=12"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 12
    assert final.content[0].text == text and final.usage.output_tokens >= 12
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_tool_loop_streaming(env, model):
    _, _, client = env
    messages = [{"role": "user", "content": "weather in Paris and Rome? #fake:tools"}]
    with client.messages.stream(model=model, max_tokens=500, messages=messages, tools=TOOLS) as stream:
        first = stream.get_final_message()
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use"
    assert [u.input for u in uses] == [{"city": "Paris"}, {"city": "Rome"}] and all(u.name == "get_weather" for u in uses)
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "18C"} for u in uses]})
    second = client.messages.create(model=model, max_tokens=500, messages=messages, tools=TOOLS)
    assert second.content[0].type == "text" and second.stop_reason == "end_turn"


def test_native_pass_through_keeps_the_clients_request(env, fake_anthropic: FakeAnthropicState):
    """Claude Code's extras reach Anthropic unchanged (model id mapped, key swapped)."""
    gw, cust, client = env
    client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=300,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "context-management-2025-06-27"},
        extra_query={"beta": "true"},
        extra_body={"context_management": {"edits": []}, "metadata": {"user_id": "session-42"}},
    )
    sent = fake_anthropic.requests[-1]
    assert sent.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert sent.headers["x-api-key"] == "sk-upstream" and cust.key not in json.dumps(dict(sent.headers))
    assert sent.json["context_management"] == {"edits": []} and sent.json["metadata"] == {"user_id": "session-42"}
    assert sent.json["model"] == "claude-sonnet-4-6"


def test_thinking_signatures_round_trip_natively(env):
    _, _, client = env
    messages = [{"role": "user", "content": "weather? #fake:tools #fake:thinking=3"}]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    first = client.messages.create(model="claude-sonnet-4-6", max_tokens=3000, messages=messages, tools=TOOLS, thinking=thinking)
    assert first.content[0].type == "thinking" and first.content[0].signature
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": b.id, "content": "ok"}
                                                 for b in first.content if b.type == "tool_use"]})
    second = client.messages.create(model="claude-sonnet-4-6", max_tokens=3000, messages=messages, tools=TOOLS, thinking=thinking)
    assert any(b.type == "text" for b in second.content)


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(env, model, fake_anthropic: FakeAnthropicState):
    _, _, client = env
    counted = client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "one two three four"}])
    assert counted.input_tokens > 0
    if model.startswith("claude"):
        assert fake_anthropic.requests[-1].path == "/v1/messages/count_tokens"  # exact, from Anthropic itself


def test_errors_use_anthropics_format(env):
    gw, cust, client = env
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.create(model="claude-nonexistent-9", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["type"] == "error" and exc.value.body["error"]["type"] == "not_found_error"
    req = urllib.request.Request(f"{gw.base_url}/messages", method="POST", data=json.dumps(
        {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "x"}]}).encode(),
        headers={"x-api-key": cust.key, "content-type": "application/json", "anthropic-version": "2023-06-01"})
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req, timeout=10)
    assert http_err.value.code == 400
    body = json.loads(http_err.value.read())
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error" and "max_tokens" in body["error"]["message"]
    bad = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key="th-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        bad.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["type"] == "authentication_error"
    bad.close()
    for model in ("claude-sonnet-4-6", "deepseek/deepseek-v4-pro"):
        with pytest.raises(anthropic.APIStatusError) as exc:
            client.messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": "#fake:status=529" if model.startswith("claude") else "#fake:status=503"}])
        assert exc.value.status_code == 503 and exc.value.body["error"]["type"] == "overloaded_error"
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0


def test_insufficient_credits_is_refused_before_the_upstream(gateway: Harness, anthropic_url: str, fake_anthropic: FakeAnthropicState):
    gateway.channel("anthropic", anthropic_url, name="claude")
    cust = customer(gateway, credits_usd="0.00001")
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=1000, messages=[{"role": "user", "content": "x"}])
    client.close()
    assert exc.value.status_code == 402 and exc.value.body["error"]["type"] == "billing_error"
    assert fake_anthropic.requests == []


def test_midstream_error_reaches_the_client_as_an_error_event(env, fake_openai: FakeOpenAIState):
    gw, cust, client = env
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model="deepseek/deepseek-v4-pro", max_tokens=100,
                                    messages=[{"role": "user", "content": "#fake:tokens=20 #fake:error_mid"}]) as stream:
            for _ in stream:
                pass
    gw.flush()
    assert gw.credits(cust.email)["held_nanos"] == 0 and gw.ledger_report().ok


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_answer_carries_its_cost(env, model, stream):
    """usage.cost (exact USD, as the OpenAI shape has it) is what the ledger charged, passed through or translated."""
    gw, _, client = env
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=200, stream=stream, messages=[{"role": "user", "content": "hello #fake:tokens=9"}]
    )
    if stream:
        deltas = [event for event in raw.parse() if event.type == "message_delta"]
        assert len(deltas) == 1
        usage = deltas[0].usage
    else:
        usage = raw.parse().usage
    gw.flush()
    row = gw.request_row(raw.headers["x-request-id"])
    assert row.cost_nanos > 0
    assert Decimal(str(usage.model_extra["cost"])) == Decimal(row.cost_nanos) / 10**9


def test_models_retrieve_and_list_in_anthropics_shape(env):
    """The anthropic SDK's models.retrieve / models.list (they send anthropic-version): Anthropic's ModelInfo and page."""
    _, _, client = env
    info = client.models.retrieve("anthropic/claude-sonnet-4-6")
    assert info.type == "model" and info.id == "anthropic/claude-sonnet-4-6" and info.display_name and info.created_at.year >= 2025
    assert client.models.retrieve("openai/gpt-4.1").id == "openai/gpt-4.1"  # every catalog chat model, ids with '/'
    ids = [m.id for m in client.models.list()]
    assert "anthropic/claude-sonnet-4-6" in ids and "openai/gpt-4.1" in ids
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.models.retrieve("no/such-model")
    assert exc.value.body["type"] == "error" and exc.value.body["error"]["type"] == "not_found_error"
