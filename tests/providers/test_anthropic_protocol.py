"""OpenAI chat <-> Anthropic Messages translation (pure), plus round trips against the fake Anthropic."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from tests.support.reading import ReadStream
from tokenhub.errors import InvalidRequest, UpstreamError
from tokenhub.providers.anthropic.adapter import AnthropicAdapter
from tokenhub.providers.anthropic.request import (
    DEFAULT_MAX_TOKENS,
    JSON_OBJECT_INSTRUCTION,
    adaptive_effort,
    model_version,
    uses_adaptive_thinking,
)
from tokenhub.providers.anthropic.wire import ANTHROPIC_VERSION, tool_use_id
from tokenhub.sse import SSEDecoder
from tokenhub.upstream import Channel

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"
CHANNEL = Channel(id=1, name="anthropic", provider="anthropic", protocol="anthropic",
                  base_url="https://api.anthropic.com", api_key="sk-ant-secret", priority=0, weight=1)
ADAPTER = AnthropicAdapter()
OLD = "claude-sonnet-4-5"  # budget-form thinking
NEW = "claude-sonnet-4-6"  # adaptive thinking + effort
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
WEATHER_OUT = {"name": "get_weather", "description": "Weather by city",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def translate(payload: dict[str, Any], model: str = OLD, **kwargs: Any) -> dict[str, Any]:
    request = ADAPTER.build_request(payload, model, CHANNEL, stream=False, **kwargs)
    return orjson.loads(request.body)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def anthropic_body(messages: list[dict[str, Any]], system: list[dict[str, Any]] | None = None, model: str = OLD,
                   max_tokens: int = DEFAULT_MAX_TOKENS, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
    if system:
        body["system"] = system
    body["messages"] = messages
    body.update(extra)
    return body


# --------------------------------------------------------------------------- request mapping

REQUEST_CASES: list[tuple[str, dict[str, Any], str, dict[str, Any], dict[str, Any]]] = [
    (
        "plain",
        {"messages": [user("Hi")]},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}]),
    ),
    (
        "system and developer anywhere, several; consecutive same-role merged",
        {"messages": [{"role": "system", "content": "Be terse."}, user("a"),
                      {"role": "developer", "content": [{"type": "text", "text": "Use SI units."}]},
                      user("b"), {"role": "assistant", "content": "c"}, {"role": "assistant", "content": "d"},
                      {"role": "system", "content": "   "}, user("e")]},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("a"), text("b")]},
                        {"role": "assistant", "content": [text("c"), text("d")]},
                        {"role": "user", "content": [text("e")]}],
                       system=[text("Be terse."), text("Use SI units.")]),
    ),
    (
        "system cache_control kept",
        {"messages": [{"role": "system", "content": [{"type": "text", "text": "Long.", "cache_control": {"type": "ephemeral"}}]},
                      user("q")]},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("q")]}],
                       system=[{"type": "text", "text": "Long.", "cache_control": {"type": "ephemeral"}}]),
    ),
    (
        "max_completion_tokens wins over max_tokens",
        {"messages": [user("Hi")], "max_tokens": 100, "max_completion_tokens": 200},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}], max_tokens=200),
    ),
    (
        "the relay's bound wins: it is what the hold covers",
        {"messages": [user("Hi")], "max_tokens": 100},
        OLD, {"max_output": 64000},
        anthropic_body([{"role": "user", "content": [text("Hi")]}], max_tokens=64000),
    ),
    (
        "sampling parameters dropped on the current API version",
        {"messages": [user("Hi")], "temperature": 0.2, "top_p": 0.9, "seed": 7, "frequency_penalty": 1, "logprobs": True},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}]),
    ),
    (
        "sampling parameters on 2023-06-01: temperature clamped to 1",
        {"messages": [user("Hi")], "temperature": 1.7, "top_p": 0.9},
        OLD, {"anthropic_version": "2023-06-01"},
        anthropic_body([{"role": "user", "content": [text("Hi")]}], temperature=1.0, top_p=0.9),
    ),
    (
        "stop string",
        {"messages": [user("Hi")], "stop": "END"},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}], stop_sequences=["END"]),
    ),
    (
        "stop list: whitespace-only entries dropped",
        {"messages": [user("Hi")], "stop": ["\n", "  ", "###", "END"]},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}], stop_sequences=["###", "END"]),
    ),
    (
        "user -> metadata.user_id",
        {"messages": [user("Hi")], "user": "u_123"},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}], metadata={"user_id": "u_123"}),
    ),
    (
        "user that is an e-mail is not sent",
        {"messages": [user("Hi")], "user": "jane@example.com"},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}]),
    ),
    (
        "user that is a phone number is not sent",
        {"messages": [user("Hi")], "user": "+1 (555) 010-9999"},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}]),
    ),
    (
        "images: data URL -> base64, http(s) -> url, PDF data URL -> document",
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "image_url", "image_url": {"url": "data:application/pdf;base64,JVBERi0x"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0y", "filename": "a.pdf"}},
        ]}]},
        OLD, {},
        anthropic_body([{"role": "user", "content": [
            text("What is this?"),
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0y"}},
        ]}]),
    ),
    (
        "tools, tool_choice auto",
        {"messages": [user("Weather?")], "tools": [WEATHER], "tool_choice": "auto"},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Weather?")]}], tools=[WEATHER_OUT], tool_choice={"type": "auto"}),
    ),
    (
        "tool without parameters, strict kept; tool_choice none",
        {"messages": [user("Time?")], "tool_choice": "none",
         "tools": [{"type": "function", "function": {"name": "get_time", "strict": True}}]},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Time?")]}],
                       tools=[{"name": "get_time", "input_schema": {"type": "object", "properties": {}}, "strict": True}],
                       tool_choice={"type": "none"}),
    ),
    (
        "tool_choice required -> any, with parallel_tool_calls false",
        {"messages": [user("Weather?")], "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Weather?")]}], tools=[WEATHER_OUT],
                       tool_choice={"type": "any", "disable_parallel_tool_use": True}),
    ),
    (
        "named tool_choice -> tool",
        {"messages": [user("Weather?")], "tools": [WEATHER],
         "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Weather?")]}], tools=[WEATHER_OUT],
                       tool_choice={"type": "tool", "name": "get_weather"}),
    ),
    (
        "parallel_tool_calls false alone -> auto + disable_parallel_tool_use",
        {"messages": [user("Weather?")], "tools": [WEATHER], "parallel_tool_calls": False},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Weather?")]}], tools=[WEATHER_OUT],
                       tool_choice={"type": "auto", "disable_parallel_tool_use": True}),
    ),
    (
        "tool_choice without tools is dropped",
        {"messages": [user("Hi")], "tool_choice": "required", "parallel_tool_calls": False},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}]),
    ),
    (
        "tool loop: tool_use from tool_calls (no empty text), results in ONE user turn before the text",
        {"tools": [WEATHER], "messages": [
            user("Paris and Rome?"),
            {"role": "assistant", "content": "", "tool_calls": [call("toolu_1", "get_weather", '{"city": "Paris"}'),
                                                                call("toolu_2", "get_weather", '{"city":"Rome"}')]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            user("Also, be brief."),
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "21C"}]},
        ]},
        OLD, {},
        anthropic_body([
            {"role": "user", "content": [text("Paris and Rome?")]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [text("21C")]},
                text("Also, be brief.")]},
        ], tools=[WEATHER_OUT]),
    ),
    (
        "arguments that are not a JSON object -> {}; empty tool result -> no content; whitespace text dropped",
        {"tools": [WEATHER], "messages": [
            user("Go"),
            {"role": "assistant", "content": "  ", "tool_calls": [call("a", "get_weather", '{"city": "Par'),
                                                                  call("b", "get_weather", ""),
                                                                  call("c", "get_weather", "[1, 2]")]},
            {"role": "tool", "tool_call_id": "a", "content": ""},
            {"role": "tool", "tool_call_id": "b", "content": " "},
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
        ]},
        OLD, {},
        anthropic_body([
            {"role": "user", "content": [text("Go")]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "a", "name": "get_weather", "input": {}},
                {"type": "tool_use", "id": "b", "name": "get_weather", "input": {}},
                {"type": "tool_use", "id": "c", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "a"},
                {"type": "tool_result", "tool_use_id": "b"},
                {"type": "tool_result", "tool_use_id": "c", "content": "ok"}]},
        ], tools=[WEATHER_OUT]),
    ),
    (
        "tool ids sanitized the same way in tool_use and tool_result",
        {"tools": [WEATHER], "messages": [
            user("Go"),
            {"role": "assistant", "content": None, "tool_calls": [call("call:abc/1", "get_weather", "{}")]},
            {"role": "tool", "tool_call_id": "call:abc/1", "content": "x"},
        ]},
        OLD, {},
        anthropic_body([
            {"role": "user", "content": [text("Go")]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": tool_use_id("call:abc/1"), "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use_id("call:abc/1"), "content": "x"}]},
        ], tools=[WEATHER_OUT]),
    ),
    (
        "empty user message dropped; a conversation starting with the assistant gets a user turn; "
        "final assistant prefill loses trailing whitespace",
        {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "Hello."}, user("   "),
                      user("Hi"), {"role": "assistant", "content": "The answer is "}]},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text(".")]},
                        {"role": "assistant", "content": [text("Hello.")]},
                        {"role": "user", "content": [text("Hi")]},
                        {"role": "assistant", "content": [text("The answer is")]}], system=[text("s")]),
    ),
    (
        "reasoning_effort on a budget-form model: a share of max_tokens",
        {"messages": [user("Think")], "max_tokens": 10000, "reasoning_effort": "high"},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Think")]}], max_tokens=10000,
                       thinking={"type": "enabled", "budget_tokens": 8000}),
    ),
    (
        "reasoning_effort low with a small max_tokens: budget 1024, max_tokens raised",
        {"messages": [user("Think")], "max_tokens": 500, "reasoning_effort": "low"},
        "claude-haiku-4-5-20251001", {},
        anthropic_body([{"role": "user", "content": [text("Think")]}], model="claude-haiku-4-5-20251001", max_tokens=1524,
                       thinking={"type": "enabled", "budget_tokens": 1024}),
    ),
    (
        "reasoning_effort on Claude 4.6: adaptive thinking + effort",
        {"messages": [user("Think")], "reasoning_effort": "medium"},
        NEW, {},
        anthropic_body([{"role": "user", "content": [text("Think")]}], model=NEW,
                       thinking={"type": "adaptive", "display": "summarized"}, output_config={"effort": "medium"}),
    ),
    (
        "xhigh on Sonnet 4.6 steps down to max; thinking drops temperature even on 2023-06-01",
        {"messages": [user("Think")], "reasoning_effort": "xhigh", "temperature": 0.3},
        NEW, {"anthropic_version": "2023-06-01"},
        anthropic_body([{"role": "user", "content": [text("Think")]}], model=NEW,
                       thinking={"type": "adaptive", "display": "summarized"}, output_config={"effort": "max"}),
    ),
    (
        "reasoning_effort none: no thinking",
        {"messages": [user("Hi")], "reasoning_effort": "none"},
        NEW, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}], model=NEW),
    ),
    (
        "forced tool_choice: thinking off (effort kept on 4.6+)",
        {"messages": [user("Weather?")], "tools": [WEATHER], "tool_choice": "required", "reasoning_effort": "low"},
        NEW, {},
        anthropic_body([{"role": "user", "content": [text("Weather?")]}], model=NEW, tools=[WEATHER_OUT],
                       tool_choice={"type": "any"}, output_config={"effort": "low"}),
    ),
    (
        "signed reasoning_details replayed as thinking + redacted_thinking before tool_use",
        {"tools": [WEATHER], "reasoning_effort": "high", "max_tokens": 8000, "messages": [
            user("Rome?"),
            {"role": "assistant", "content": "Checking.", "reasoning_content": "Need the tool.",
             "reasoning_details": [
                 {"type": "reasoning.encrypted", "data": "REDACTED==", "format": "anthropic-claude-v1", "index": 0},
                 {"type": "reasoning.text", "text": "Need the tool.", "signature": "SIG==", "format": "anthropic-claude-v1",
                  "index": 1},
                 {"type": "reasoning.text", "text": "From another vendor", "signature": "x", "format": "google-gemini-v1"},
             ],
             "tool_calls": [call("toolu_9", "get_weather", '{"city":"Rome"}')]},
            {"role": "tool", "tool_call_id": "toolu_9", "content": "21C"},
        ]},
        OLD, {},
        anthropic_body([
            {"role": "user", "content": [text("Rome?")]},
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": "REDACTED=="},
                {"type": "thinking", "thinking": "Need the tool.", "signature": "SIG=="},
                text("Checking."),
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "21C"}]},
        ], max_tokens=8000, tools=[WEATHER_OUT], thinking={"type": "enabled", "budget_tokens": 6400}),
    ),
    (
        "LiteLLM thinking_blocks are read too",
        {"tools": [WEATHER], "reasoning_effort": "low", "messages": [
            user("Rome?"),
            {"role": "assistant", "content": None,
             "thinking_blocks": [{"type": "thinking", "thinking": "Hmm.", "signature": "S1"}],
             "tool_calls": [call("toolu_9", "get_weather", '{"city":"Rome"}')]},
            {"role": "tool", "tool_call_id": "toolu_9", "content": "21C"},
        ]},
        NEW, {},
        anthropic_body([
            {"role": "user", "content": [text("Rome?")]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Hmm.", "signature": "S1"},
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "21C"}]},
        ], model=NEW, tools=[WEATHER_OUT], thinking={"type": "adaptive", "display": "summarized"},
            output_config={"effort": "low"}),
    ),
    (
        "last tool turn without signed thinking: thinking off for the request, no thinking blocks anywhere",
        {"tools": [WEATHER], "reasoning_effort": "high", "max_tokens": 8000, "messages": [
            user("Hi"),
            {"role": "assistant", "content": "Hello.",
             "reasoning_details": [{"type": "reasoning.text", "text": "Greet.", "signature": "S0"}]},
            user("Rome?"),
            {"role": "assistant", "content": None, "reasoning_content": "unsigned thoughts",
             "tool_calls": [call("toolu_9", "get_weather", '{"city":"Rome"}')]},
            {"role": "tool", "tool_call_id": "toolu_9", "content": "21C"},
        ]},
        OLD, {},
        anthropic_body([
            {"role": "user", "content": [text("Hi")]},
            {"role": "assistant", "content": [text("Hello.")]},
            {"role": "user", "content": [text("Rome?")]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "21C"}]},
        ], max_tokens=8000, tools=[WEATHER_OUT]),
    ),
    (
        "thinking blocks are not sent when thinking is off",
        {"messages": [user("Hi"), {"role": "assistant", "content": "Hello.",
                                   "reasoning_details": [{"type": "reasoning.text", "text": "t", "signature": "S"}]},
                      user("Again")]},
        OLD, {},
        anthropic_body([{"role": "user", "content": [text("Hi")]}, {"role": "assistant", "content": [text("Hello.")]},
                        {"role": "user", "content": [text("Again")]}]),
    ),
    (
        "response_format json_schema -> output_config.format",
        {"messages": [user("JSON")], "response_format": {"type": "json_schema", "json_schema": {
            "name": "person", "strict": True,
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
                       "additionalProperties": False}}}},
        NEW, {},
        anthropic_body([{"role": "user", "content": [text("JSON")]}], model=NEW, output_config={"format": {
            "type": "json_schema",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
                       "additionalProperties": False}}}),
    ),
    (
        "response_format json_object -> a system instruction",
        {"messages": [{"role": "system", "content": "s"}, user("JSON")], "response_format": {"type": "json_object"}},
        NEW, {},
        anthropic_body([{"role": "user", "content": [text("JSON")]}], model=NEW,
                       system=[text("s"), text(JSON_OBJECT_INSTRUCTION)]),
    ),
]


@pytest.mark.parametrize(("payload", "model", "kwargs", "expected"), [c[1:] for c in REQUEST_CASES],
                         ids=[c[0] for c in REQUEST_CASES])
def test_request_mapping(payload: dict[str, Any], model: str, kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    assert translate(payload, model, **kwargs) == expected


def test_request_url_headers_and_stream() -> None:
    request = ADAPTER.build_request({"messages": [user("Hi")], "stream": True, "stream_options": {"include_usage": True}},
                                    NEW, CHANNEL, stream=True, extra_headers={"anthropic-beta": "context-1m-2025-08-07"})
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers == {
        "x-api-key": "sk-ant-secret",
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
        "accept": "text/event-stream",
        "anthropic-beta": "context-1m-2025-08-07",
    }
    body = orjson.loads(request.body)
    assert body["stream"] is True and "stream_options" not in body
    plain = ADAPTER.build_request({"messages": [user("Hi")]}, NEW, CHANNEL, stream=False)
    assert "stream" not in orjson.loads(plain.body) and plain.headers["accept"] == "application/json"


@pytest.mark.parametrize(("base_url", "url"), [
    ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
    ("https://api.anthropic.com/", "https://api.anthropic.com/v1/messages"),
    ("https://proxy.example/anthropic/v1", "https://proxy.example/anthropic/v1/messages"),
])
def test_request_url_forms(base_url: str, url: str) -> None:
    channel = Channel(id=2, name="p", provider="anthropic", protocol="anthropic", base_url=base_url, api_key="k",
                      priority=0, weight=1)
    assert ADAPTER.build_request({"messages": [user("Hi")]}, NEW, channel, stream=False).url == url


@pytest.mark.parametrize(("payload", "param"), [
    ({"messages": [user("Hi")], "n": 2}, "n"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]},
     "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}]}]},
     "messages"),
    ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ({"messages": [user("Hi")], "reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"messages": [user("Hi")], "tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools"),
])
def test_request_refusals(payload: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        translate(payload)
    assert info.value.status == 400 and info.value.param == param
    if param == "n":
        assert "'n'" in info.value.message


def test_tool_use_id_sanitizing() -> None:
    assert tool_use_id("toolu_01A-b") == "toolu_01A-b"
    cleaned = tool_use_id("call.1")
    assert cleaned == tool_use_id("call.1") and cleaned != tool_use_id("call:1")
    assert all(c.isalnum() or c in "_-" for c in cleaned + tool_use_id("") + tool_use_id("ünï"))


@pytest.mark.parametrize(("model", "version", "adaptive"), [
    ("claude-3-5-sonnet-20241022", (3, 5), False),
    ("claude-3-7-sonnet-latest", (3, 7), False),
    ("claude-sonnet-4-20250514", (4, 0), False),
    ("claude-opus-4-1-20250805", (4, 1), False),
    ("claude-haiku-4-5-20251001", (4, 5), False),
    ("claude-sonnet-4-5@20250929", (4, 5), False),
    ("claude-opus-4-6", (4, 6), True),
    ("anthropic.claude-opus-4-6-v1", (4, 6), True),
    ("claude-opus-4.7", (4, 7), True),
    ("claude-opus-5-5", (5, 5), True),
    ("claude-mythos-preview", None, True),
])
def test_model_versions(model: str, version: tuple[int, int] | None, adaptive: bool) -> None:
    assert model_version(model) == version
    assert uses_adaptive_thinking(model) is adaptive


@pytest.mark.parametrize(("model", "effort", "sent"), [
    ("claude-sonnet-4-6", "minimal", "low"),
    ("claude-sonnet-4-6", "xhigh", "max"),
    ("claude-opus-4-6", "max", "max"),
    ("claude-opus-4-7", "xhigh", "xhigh"),
    ("claude-sonnet-5", "xhigh", "xhigh"),
    ("claude-haiku-5-5", "max", "high"),
    ("claude-haiku-5-5", "xhigh", "high"),
    ("claude-mythos-preview", "xhigh", "max"),
])
def test_adaptive_effort(model: str, effort: str, sent: str) -> None:
    assert adaptive_effort(model, effort) == sent


# --------------------------------------------------------------------------- response mapping

MESSAGE = {
    "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
    "content": [
        {"type": "thinking", "thinking": "User wants weather...", "signature": "EqQBCgIYAhIM"},
        {"type": "redacted_thinking", "data": "EmwKAhgB"},
        {"type": "text", "text": "Checking"},
        {"type": "text", "text": " now."},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Rome", "days": [1, 2]}},
        {"type": "tool_use", "id": "toolu_01C", "name": "get_time", "input": {}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 42, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1800,
              "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 0},
              "output_tokens": 95, "output_tokens_details": {"thinking_tokens": 30}, "service_tier": "standard"},
}


def test_response_mapping() -> None:
    completion = ADAPTER.parse_response(orjson.dumps(MESSAGE))
    body = completion.body
    assert body["id"] == "chatcmpl-msg_01XYZ" and body["object"] == "chat.completion" and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Checking now.",
        "refusal": None,
        "tool_calls": [
            {"id": "toolu_01B", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome","days":[1,2]}'}},
            {"id": "toolu_01C", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
        ],
        "reasoning_content": "User wants weather...",
        "reasoning_details": [
            {"type": "reasoning.text", "text": "User wants weather...", "signature": "EqQBCgIYAhIM",
             "format": "anthropic-claude-v1", "index": 0},
            {"type": "reasoning.encrypted", "data": "EmwKAhgB", "format": "anthropic-claude-v1", "index": 1},
        ],
    }
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.cache_write_tokens,
            usage.reasoning_tokens) == (1942, 95, 1800, 100, 30)
    assert body["usage"] == {"prompt_tokens": 1942, "completion_tokens": 95, "total_tokens": 2037,
                             "prompt_tokens_details": {"cached_tokens": 1800, "cache_write_tokens": 100},
                             "completion_tokens_details": {"reasoning_tokens": 30}}


def test_response_without_text_has_null_content() -> None:
    message = {**MESSAGE, "content": [MESSAGE["content"][4]], "usage": {"input_tokens": 5, "output_tokens": 3}}
    completion = ADAPTER.parse_response(orjson.dumps(message))
    assert completion.body["choices"][0]["message"]["content"] is None
    assert "reasoning_content" not in completion.body["choices"][0]["message"]
    assert completion.usage is not None and completion.usage.prompt_tokens == 5 and completion.usage.cached_tokens == 0


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter"),
    ("something_new", "stop"),
])
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    message = {**MESSAGE, "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert ADAPTER.parse_response(orjson.dumps(message)).body["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("body", [
    b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}',
    b'{"object":"chat.completion","choices":[]}',
    b'{"type":"message","content":',
    b"<html>bad gateway</html>",
])
def test_non_message_bodies_raise(body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        ADAPTER.parse_response(body)
    if b"Overloaded" in body:
        assert "Overloaded" in info.value.message


@pytest.mark.parametrize(("body", "detail"), [
    (b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"r"}',
     "max_tokens: Field required"),
    (b'{"error":"plain"}', "plain"),
    (b"upstream connect error", "upstream connect error"),
    (b"", "no details"),
])
def test_error_detail(body: bytes, detail: str) -> None:
    assert ADAPTER.error_detail(body) == detail


# --------------------------------------------------------------------------- stream mapping


def fixture_bytes(name: str, crlf: bool) -> bytes:
    raw = (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n")
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def run_stream(data: bytes, model: str = "anthropic/claude-sonnet-4-6", step: int = 7) -> tuple[ReadStream,
                                                                                                   list[dict[str, Any]]]:
    """Feed the bytes in odd-sized pieces through the SSE decoder and the chunk stream."""
    decoder = SSEDecoder()
    stream = ReadStream(ADAPTER, model)
    chunks: list[dict[str, Any]] = []
    for start in range(0, len(data), step):
        for event in decoder.feed(data[start:start + step]):
            chunks += stream.feed(event)
    for event in decoder.close():
        chunks += stream.feed(event)
    chunks += stream.close()
    return stream, chunks


def sdk_final(chunks: list[dict[str, Any]]) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    return state.get_final_completion()


def check_invariants(chunks: list[dict[str, Any]], model: str = "anthropic/claude-sonnet-4-6") -> None:
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in chunks)
    assert all(c["choices"][0]["index"] == 0 for c in chunks)
    assert sum(1 for c in chunks if c["choices"][0]["finish_reason"]) <= 1


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_stream_text_with_cache_usage(crlf: bool) -> None:
    stream, chunks = run_stream(fixture_bytes("text_cache.sse", crlf))
    check_invariants(chunks)
    assert chunks[0]["id"] == "chatcmpl-msg_01TextCache"
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "Hello", ", world", "!", None]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert stream.finished and stream.finish_reason == "stop" and stream.error is None
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens, stream.usage.cached_tokens,
            stream.usage.cache_write_tokens) == (2112, 7, 1800, 300)
    final = sdk_final(chunks)
    assert final.choices[0].message.content == "Hello, world!" and final.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("step", [1, 5, 64, 100000])
def test_stream_tools(step: int) -> None:
    stream, chunks = run_stream(fixture_bytes("tools.sse", crlf=False), step=step)
    check_invariants(chunks)
    tool_deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert tool_deltas[0] == {"index": 0, "id": "toolu_01Paris", "type": "function",
                              "function": {"name": "get_weather", "arguments": ""}}
    assert [d["index"] for d in tool_deltas] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert all("id" not in d for d in tool_deltas if d["function"].get("arguments"))
    assert tool_deltas[-1] == {"index": 2, "function": {"arguments": "{}"}}  # zero-arg tool: "{}" at its stop
    assert stream.finish_reason == "tool_calls" and stream.finished
    assert stream.usage is not None and (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (410, 88)
    final = sdk_final(chunks)
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content == "Checking both cities."
    calls = message.tool_calls
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_01Paris", "get_weather", {"city": "Paris", "unit": "c"}),
        ("toolu_01Rome", "get_weather", {"city": "Rome"}),
        ("toolu_01Clock", "get_time", {}),
    ]


def test_stream_thinking_signature_and_redacted() -> None:
    stream, chunks = run_stream(fixture_bytes("thinking_tools.sse", crlf=True))
    check_invariants(chunks)
    reasoning = [c["choices"][0]["delta"]["reasoning_details"] for c in chunks if "reasoning_details" in c["choices"][0]["delta"]]
    assert reasoning == [
        [{"index": 0, "type": "reasoning.encrypted", "format": "anthropic-claude-v1",
          "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj"}],
        [{"index": 1, "type": "reasoning.text", "format": "anthropic-claude-v1", "text": "User wants weather"}],
        [{"index": 1, "type": "reasoning.text", "text": " in Rome."}],
        [{"index": 1, "type": "reasoning.text", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}],
    ]
    assert stream.usage is not None and stream.usage.reasoning_tokens == 40 and stream.usage.cached_tokens == 1800
    final = sdk_final(chunks)
    message = final.choices[0].message.model_dump()
    assert message["reasoning_content"] == "User wants weather in Rome."
    assert message["reasoning_details"] == [
        {"index": 0, "type": "reasoning.encrypted", "format": "anthropic-claude-v1",
         "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2YfWXGmKDxH4mPnZ5sQ7vB5URj"},
        {"index": 1, "type": "reasoning.text", "format": "anthropic-claude-v1", "text": "User wants weather in Rome.",
         "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
    ]
    assert message["content"] == "Checking."
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"city": "Rome"}
    # The accumulated message, echoed back, replays the signed blocks first.
    replay = translate({"tools": [WEATHER], "reasoning_effort": "low", "messages": [
        user("Rome?"), {k: v for k, v in message.items() if v is not None},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "21C"}]}, NEW)
    assert [b["type"] for b in replay["messages"][1]["content"]] == ["redacted_thinking", "thinking", "text", "tool_use"]
    assert replay["messages"][1]["content"][1] == {"type": "thinking", "thinking": "User wants weather in Rome.",
                                                   "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}
    assert replay["thinking"] == {"type": "adaptive", "display": "summarized"}


def test_stream_error_event() -> None:
    stream, chunks = run_stream(fixture_bytes("error_mid.sse", crlf=False))
    check_invariants(chunks, "anthropic/claude-sonnet-4-6")
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "Partial"]
    assert stream.error == {"message": "Overloaded", "type": "overloaded_error", "code": "overloaded_error"}
    assert not stream.finished and stream.finish_reason is None and stream.usage is None


def test_stream_malformed_event() -> None:
    from tokenhub.providers.base import MalformedChunk
    from tokenhub.sse import Event

    stream = ReadStream(ADAPTER, "m")
    with pytest.raises(MalformedChunk):
        stream.feed(Event(b"content_block_delta", b"{not json"))
    with pytest.raises(MalformedChunk):
        stream.feed(Event(b"", b"[1, 2]"))


def test_stream_signature_only_block_and_role_without_message_start() -> None:
    from tokenhub.sse import Event

    stream = ReadStream(ADAPTER, "m")
    events = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "S"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 3}},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    chunks = [c for e in events for c in stream.feed(Event(e["type"].encode(), orjson.dumps(e)))]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_details": [
        {"index": 0, "type": "reasoning.text", "format": "anthropic-claude-v1", "text": "", "signature": "S"}]}
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "length"]
    assert stream.usage is not None and stream.usage.completion_tokens == 4 and stream.finished


# --------------------------------------------------------------------------- round trips with the fake Anthropic

try:
    from tests.support.servers import ServerThread
    from tokenhub.simulator.anthropic import create_app as create_fake_anthropic
except ImportError:  # pragma: no cover - the simulator is optional for these tests
    create_fake_anthropic = None  # type: ignore[assignment]

FAKE_KEY = "sk-ant-fake"


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[Channel]:
    if create_fake_anthropic is None:
        pytest.skip("no fake Anthropic simulator")
    server = ServerThread(create_fake_anthropic(api_keys={FAKE_KEY})).start()
    yield Channel(id=9, name="fake", provider="anthropic", protocol="anthropic", base_url=server.url, api_key=FAKE_KEY,
                  priority=0, weight=1)
    server.stop()


def send(channel: Channel, payload: dict[str, Any], model: str, *, stream: bool = False) -> tuple[int, bytes]:
    request = ADAPTER.build_request(payload, model, channel, stream=stream)
    http_request = urllib.request.Request(request.url, data=request.body, headers=request.headers, method="POST")
    try:
        with urllib.request.urlopen(http_request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def complete(channel: Channel, payload: dict[str, Any], model: str) -> dict[str, Any]:
    status, body = send(channel, payload, model)
    assert status == 200, ADAPTER.error_detail(body)
    return ADAPTER.parse_response(body).body


def streamed(channel: Channel, payload: dict[str, Any], model: str) -> tuple[ReadStream, dict[str, Any]]:
    status, body = send(channel, payload, model, stream=True)
    assert status == 200, ADAPTER.error_detail(body)
    stream, chunks = run_stream(body, model=model, step=50)
    assert stream.finished and stream.error is None
    message = sdk_final(chunks).choices[0].message.model_dump()
    return stream, {k: v for k, v in message.items() if v is not None and k not in ("parsed", "audio", "function_call")}


def tool_results(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": c["id"], "content": f"sunny in {json.loads(c['function']['arguments'])['city']}"}
            for c in message["tool_calls"]]


def test_fake_plain(fake_anthropic: Channel) -> None:
    body = complete(fake_anthropic, {"messages": [{"role": "system", "content": "Be brief."}, user("Hi"),
                                                  {"role": "assistant", "content": "Hello."}, user("Again")],
                                     "stop": ["\n\n"], "user": "u_1", "max_tokens": 50}, NEW)
    assert body["choices"][0]["message"]["content"] == "Hello! This is a fake reply."
    assert body["choices"][0]["finish_reason"] == "stop"
    _, message = streamed(fake_anthropic, {"messages": [user("Hi #fake:ping #fake:crlf")]}, NEW)
    assert message["content"] == "Hello! This is a fake reply."


@pytest.mark.parametrize("use_stream", [False, True], ids=["json", "sse"])
def test_fake_tools_two_turns(fake_anthropic: Channel, use_stream: bool) -> None:
    payload: dict[str, Any] = {"tools": [WEATHER], "tool_choice": "auto", "parallel_tool_calls": True,
                               "messages": [user("Weather in Paris and Rome? #fake:tools")]}
    if use_stream:
        _, first = streamed(fake_anthropic, payload, NEW)
    else:
        first = complete(fake_anthropic, payload, NEW)["choices"][0]["message"]
    assert [json.loads(c["function"]["arguments"]) for c in first["tool_calls"]] == [{"city": "Paris"}, {"city": "Rome"}]
    payload["messages"] += [first, *tool_results(first)]
    second = complete(fake_anthropic, payload, NEW)
    assert second["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("model", "use_stream"), [(NEW, False), (NEW, True), (OLD, False), (OLD, True)])
def test_fake_thinking_tools_signature_replay(fake_anthropic: Channel, model: str, use_stream: bool) -> None:
    payload: dict[str, Any] = {"tools": [WEATHER], "reasoning_effort": "low", "temperature": 0.5, "max_tokens": 3000,
                               "messages": [user("Weather in Paris and Rome? #fake:tools")]}
    if use_stream:
        _, first = streamed(fake_anthropic, payload, model)
    else:
        first = complete(fake_anthropic, payload, model)["choices"][0]["message"]
    assert first["reasoning_content"] and first["reasoning_details"][0]["signature"]
    payload["messages"] += [first, *tool_results(first)]
    second = complete(fake_anthropic, payload, model)
    assert second["choices"][0]["finish_reason"] == "stop"
    assert second["choices"][0]["message"]["reasoning_details"][0]["signature"]
    # A client that drops the reasoning still gets an answer: thinking is switched off for that turn.
    stripped = {k: v for k, v in first.items() if k not in ("reasoning_details", "reasoning_content")}
    payload["messages"][-3] = stripped
    third = complete(fake_anthropic, payload, model)
    assert third["choices"][0]["finish_reason"] == "stop" and "reasoning_content" not in third["choices"][0]["message"]


def test_fake_redacted_thinking_replay(fake_anthropic: Channel) -> None:
    payload: dict[str, Any] = {"tools": [WEATHER], "reasoning_effort": "high",
                               "messages": [user("Rome? #fake:tools #fake:redacted_thinking")]}
    _, first = streamed(fake_anthropic, payload, NEW)
    assert first["reasoning_details"][0]["type"] == "reasoning.encrypted"
    payload["messages"] += [first, *tool_results(first)]
    assert complete(fake_anthropic, payload, NEW)["choices"][0]["finish_reason"] == "stop"


def test_fake_error_mid_stream_and_status(fake_anthropic: Channel) -> None:
    status, body = send(fake_anthropic, {"messages": [user("Hi #fake:error_mid")]}, NEW, stream=True)
    assert status == 200
    stream, _ = run_stream(body, model=NEW)
    assert stream.error is not None and stream.error["type"] == "overloaded_error"
    status, body = send(fake_anthropic, {"messages": [user("Hi #fake:status=529")]}, NEW)
    assert status == 529 and ADAPTER.error_detail(body) == "Overloaded"
