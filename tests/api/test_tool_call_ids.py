"""A thread with tool history moves between Gemini, OpenAI-protocol and Claude models mid-conversation.

Gemini-made tool-call ids carry the thought signature (about a hundred characters); OpenAI refuses ids
over 40 (the OpenAI fake too, with OpenAI's own error), Anthropic ids outside ``^[a-zA-Z0-9_-]+$``.
Each adapter maps ids to its protocol's limits, the same id always to the same one, so a call and its
result still match, and the client keeps the ids it was given.
"""

from __future__ import annotations

import json

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.simulator.anthropic import FakeAnthropicState
from tokenhub.simulator.openai import FakeOpenAIState

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip


@pytest.fixture
def client(gateway: Harness, upstream_url: str, anthropic_url: str, gemini_url: str):
    gateway.channel("deepseek", upstream_url, name="ds")
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("gemini", gemini_url, name="gm")
    return gateway.client(customer(gateway, credits_usd="20").key)


def turn(client: openai.OpenAI, model: str, messages: list, text: str) -> openai.types.chat.ChatCompletionMessage:
    messages.append({"role": "user", "content": text})
    reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, max_tokens=400).choices[0].message
    messages.append(reply.model_dump(exclude_none=True))
    for call in reply.tool_calls or ():
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": "Paris", "sky": "clear"})})
    return reply


def test_a_thread_with_tool_calls_moves_between_protocols(client, fake_openai: FakeOpenAIState, fake_anthropic: FakeAnthropicState):
    messages: list = []
    gemini = turn(client, "google/gemini-2.5-pro", messages, "weather in Paris? #fake:tools")
    assert gemini.tool_calls and len(gemini.tool_calls[0].id) > 40  # Gemini's id, with its thought signature
    long_id = gemini.tool_calls[0].id

    openai_turn = turn(client, "deepseek/deepseek-v4-pro", messages, "and again? #fake:tools")
    assert openai_turn.tool_calls
    sent = fake_openai.requests[-1].json["messages"]
    ids = [c["id"] for m in sent for c in m.get("tool_calls") or ()] + [m["tool_call_id"] for m in sent if m["role"] == "tool"]
    assert all(len(i) <= 40 for i in ids) and long_id not in ids
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"]  # the call and its result still match
    assert messages[1]["tool_calls"][0]["id"] == long_id  # the client's own history is untouched

    claude = turn(client, "anthropic/claude-sonnet-4-6", messages, "thanks, summarise")
    assert claude.content
    blocks = [b for m in fake_anthropic.requests[-1].json["messages"] if isinstance(m["content"], list) for b in m["content"]]
    uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
    assert len(uses) >= 2 and uses == results

    back = turn(client, "google/gemini-2.5-pro", messages, "one more time")
    assert back.content


def test_the_openai_fake_refuses_a_long_id_as_openai_does(upstream_url: str):
    direct = openai.OpenAI(base_url=upstream_url, api_key="sk-upstream", max_retries=0)
    long_id = "x" * 41
    with pytest.raises(openai.BadRequestError) as exc:
        direct.chat.completions.create(model="gpt-4.1", messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": long_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": long_id, "content": "ok"}])  # fmt: skip
    assert exc.value.code == "string_above_max_length" and "maximum length 40" in exc.value.message
