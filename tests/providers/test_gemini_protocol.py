"""The Gemini adapter: request mapping (exact JSON), responses, streams from transcripts, and real HTTP
round trips against the fake Gemini upstream (which validates like the real API)."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tests.support.reading import ReadStream
from tests.support.servers import ServerThread
from tokenhub.errors import InvalidRequest, UpstreamError
from tokenhub.providers.base import MalformedChunk
from tokenhub.providers.gemini import request as gemini_request
from tokenhub.providers.gemini.adapter import GeminiAdapter
from tokenhub.providers.gemini.request import SKIP_SIGNATURE, remote_image_urls, to_gemini
from tokenhub.providers.gemini.wire import (
    THOUGHT_SEPARATOR,
    credentials_rejected,
    decode_call_id,
    encode_call_id,
    read_usage,
    retry_after_from_body,
)
from tokenhub.simulator.gemini import STATE_KEY, FakeGeminiState, create_app
from tokenhub.sse import Event, SSEDecoder
from tokenhub.tokens import Usage
from tokenhub.upstream import Channel

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gemini"
API_KEY = "gm-adapter-test"
FLASH = "gemini-2.5-flash"
GEMINI_3 = "gemini-3-pro-preview"
SIG = "CiSlTcoYJTC7HW0TLN7WI3su2R4/ch/LGXEXRJTWSTydXDRgvjEgHmn+2qDu6LmZf1x8KZn9r+WTJTzWVK9N+tcUJ6Cus/7pIw=="
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather by city",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
WEATHER_DECL = {
    "name": "get_weather",
    "description": "Weather by city",
    "parametersJsonSchema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
adapter = GeminiAdapter()


def channel(base_url: str = "https://generativelanguage.googleapis.com", key: str = API_KEY) -> Channel:
    return Channel(id=1, name="gemini", provider="gemini", protocol="gemini", base_url=base_url, api_key=key, priority=0, weight=1)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


# --------------------------------------------------------------------------- request mapping (exact JSON)

REQUEST_CASES: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    (
        "system anywhere, developer, consecutive roles merged, empty text skipped",
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Hi"},
                {"role": "user", "content": [{"type": "text", "text": "there"}, {"type": "text", "text": ""}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Bonjour."}]},
                {"role": "user", "content": "Why?"},
            ]
        },
        FLASH,
        {
            "systemInstruction": {"parts": [{"text": "Be terse."}, {"text": "Answer in French."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}, {"text": "there"}]},
                {"role": "model", "parts": [{"text": "Hello."}, {"text": "Bonjour."}]},
                {"role": "user", "parts": [{"text": "Why?"}]},
            ],
        },
    ),
    (
        "sampling parameters; max_completion_tokens wins over max_tokens; n -> candidateCount",
        {
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.3,
            "top_p": 0.9,
            "max_tokens": 50,
            "max_completion_tokens": 100,
            "stop": "END",
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "n": 2,
            "user": "u-1",
            "parallel_tool_calls": False,
            "logprobs": True,
            "stream_options": {"include_usage": True},
        },
        FLASH,
        {
            "contents": [user("x")],
            "generationConfig": {
                "temperature": 0.3,
                "topP": 0.9,
                "seed": 7,
                "presencePenalty": 0.5,
                "frequencyPenalty": -0.5,
                "maxOutputTokens": 100,
                "stopSequences": ["END"],
                "candidateCount": 2,
            },
        },
    ),
    (
        "stop list with an empty entry",
        {"messages": [{"role": "user", "content": "x"}], "stop": ["a", "", "b"], "max_tokens": 5},
        FLASH,
        {"contents": [user("x")], "generationConfig": {"maxOutputTokens": 5, "stopSequences": ["a", "b"]}},
    ),
    (
        "tools as parametersJsonSchema, zero-argument tool without parameters, tool_choice auto",
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                WEATHER,
                {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
                {"type": "function", "function": {"name": "ping"}},
            ],
            "tool_choice": "auto",
        },
        FLASH,
        {
            "contents": [user("x")],
            "tools": [{"functionDeclarations": [WEATHER_DECL, {"name": "now"}, {"name": "ping"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        },
    ),
    (
        "tool_choice required",
        {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER], "tool_choice": "required"},
        FLASH,
        {"contents": [user("x")], "tools": [{"functionDeclarations": [WEATHER_DECL]}],
         "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
    ),
    (
        "tool_choice none",
        {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER], "tool_choice": "none"},
        FLASH,
        {"contents": [user("x")], "tools": [{"functionDeclarations": [WEATHER_DECL]}],
         "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}},
    ),
    (
        "tool_choice naming a function",
        {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER],
         "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        FLASH,
        {"contents": [user("x")], "tools": [{"functionDeclarations": [WEATHER_DECL]}],
         "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}},
    ),
    (
        "tool loop: calls (signature from the id), grouped results by name, non-object results wrapped",
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_aa__thought__" + SIG.rstrip("=").replace("+", "-").replace("/", "_"), "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                        {"id": "call_bb", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_bb", "content": "12:00"},
                {"role": "tool", "tool_call_id": "call_aa__thought__" + SIG.rstrip("=").replace("+", "-").replace("/", "_"),
                 "content": [{"type": "text", "text": '{"temp_c": 18}'}]},
                {"role": "user", "content": "Thanks"},
            ]
        },
        FLASH,
        {
            "contents": [
                user("Weather in Paris and Rome?"),
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
                    {"text": "Thanks"},
                ]},
            ]
        },
    ),
    (
        "gemini 3: signatures from extra_content and reasoning_details; an unsigned turn gets the skip value",
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "tool_calls": [
                    {"id": "x1", "type": "function", "function": {"name": "f", "arguments": "{}"},
                     "extra_content": {"google": {"thought_signature": "c2lnLWE="}}},
                ]},
                {"role": "tool", "tool_call_id": "x1", "content": "[1, 2]"},
                {"role": "assistant", "reasoning_details": [{"type": "reasoning.encrypted", "id": "x2", "data": "c2lnLWI="}],
                 "tool_calls": [{"id": "x2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "x2", "content": "null"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "x3", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "x4", "type": "function", "function": {"name": "g", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "x3", "content": "ok"},
                {"role": "tool", "tool_call_id": "x4", "content": "ok"},
            ]
        },
        GEMINI_3,
        {
            "contents": [
                user("a"),
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2lnLWE="}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": [1, 2]}}}]},
                {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2lnLWI="}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": None}}}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "skip_thought_signature_validator"},
                    {"functionCall": {"name": "g", "args": {}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "f", "response": {"output": "ok"}}},
                    {"functionResponse": {"name": "g", "response": {"output": "ok"}}},
                ]},
            ]
        },
    ),
    (
        "json_object",
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}},
        FLASH,
        {"contents": [user("x")], "generationConfig": {"responseMimeType": "application/json"}},
    ),
    (
        "json_schema -> responseJsonSchema ($schema dropped)",
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "strict": True, "schema": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                                                         "type": "object", "properties": {"a": {"type": "integer"}},
                                                         "required": ["a"], "additionalProperties": False}}}},
        FLASH,
        {"contents": [user("x")], "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                                   "additionalProperties": False}}},
    ),
    (
        "response_format text is a no-op",
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}},
        FLASH,
        {"contents": [user("x")]},
    ),
    (
        "data URL image, audio and PDF inline",
        {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode(), "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "mp3"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
        ]}]},
        FLASH,
        {"contents": [{"role": "user", "parts": [
            {"text": "What is this?"},
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}},
            {"inlineData": {"mimeType": "audio/mpeg", "data": "UklGRg=="}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
        ]}]},
    ),
]


@pytest.mark.parametrize(("payload", "model", "expected"), [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES])
def test_request_mapping(payload: dict[str, Any], model: str, expected: dict[str, Any]) -> None:
    assert to_gemini(payload, model, stream=False) == expected


THINKING_CASES = [
    (FLASH, "low", {"thinkingBudget": 1024, "includeThoughts": True}),
    (FLASH, "medium", {"thinkingBudget": 8192, "includeThoughts": True}),
    (FLASH, "high", {"thinkingBudget": 24576, "includeThoughts": True}),
    (FLASH, "minimal", {"thinkingBudget": 128, "includeThoughts": True}),
    (FLASH, "none", {"thinkingBudget": 0}),
    ("gemini-2.5-pro", "none", {"thinkingBudget": 128}),
    ("gemini-2.5-flash-lite", "minimal", {"thinkingBudget": 512, "includeThoughts": True}),
    ("gemini-3-pro-preview", "low", {"thinkingLevel": "LOW", "includeThoughts": True}),
    ("gemini-3-pro-preview", "medium", {"thinkingLevel": "HIGH", "includeThoughts": True}),
    ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "LOW", "includeThoughts": True}),
    ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
    ("gemini-3-flash-preview", "medium", {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
    ("gemini-3.1-pro-preview", "high", {"thinkingLevel": "HIGH", "includeThoughts": True}),
    ("gemini-3-flash-preview", "none", {"thinkingLevel": "MINIMAL"}),
    ("gemini-flash-latest", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("gemini-2.0-flash", "high", None),
]


@pytest.mark.parametrize(("model", "effort", "expected"), THINKING_CASES)
def test_reasoning_effort_to_thinking_config(model: str, effort: str, expected: dict[str, Any] | None) -> None:
    body = to_gemini({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort}, model, stream=False)
    assert body.get("generationConfig", {}).get("thinkingConfig") == expected


def test_build_request_urls_headers_and_body() -> None:
    payload = {"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
    plain = adapter.build_request(payload, FLASH, channel("https://generativelanguage.googleapis.com/"), stream=False)
    assert plain.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert plain.headers["x-goog-api-key"] == API_KEY and "Authorization" not in plain.headers
    assert json.loads(plain.body) == {"contents": [user("hi")]} and plain.max_output is None
    streamed = adapter.build_request(payload, FLASH, channel(), stream=True)
    assert streamed.url.endswith("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert streamed.headers["Accept"] == "text/event-stream"
    capped = adapter.build_request({**payload, "max_tokens": 1_000_000}, FLASH, channel(), stream=False, max_output=64,
                                   extra_headers={"anthropic-beta": "x"})
    assert capped.max_output == 64 and "anthropic-beta" not in capped.headers
    assert json.loads(capped.body)["generationConfig"]["maxOutputTokens"] == 64


def test_remote_images_are_listed_then_inlined_from_the_fetched_bytes() -> None:
    url = "https://example.com/cat.png"
    payload = {"messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "HTTP://example.com/dog.jpg"}},
            {"type": "image_url", "image_url": {"url": url}},
        ]},
    ]}
    assert remote_image_urls(payload) == [url, "HTTP://example.com/dog.jpg"]
    images = {url: ("image/png", PNG), "HTTP://example.com/dog.jpg": ("image/jpeg", b"\xff\xd8\xff")}
    parts = to_gemini(payload, FLASH, stream=False, images=images)["contents"][0]["parts"]
    assert parts[0] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}
    assert parts[2] == {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}}
    with pytest.raises(InvalidRequest, match="could not be fetched"):
        to_gemini(payload, FLASH, stream=False, images={url: ("image/png", PNG)})


def test_percent_encoded_data_url() -> None:
    payload = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%2F%3E"}}]}]}
    part = to_gemini(payload, FLASH, stream=False)["contents"][0]["parts"][0]
    assert part == {"inlineData": {"mimeType": "image/svg+xml", "data": base64.b64encode(b"<svg/>").decode()}}


def test_inline_media_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemini_request, "MAX_INLINE_BYTES", 10)
    small = "data:image/png;base64," + base64.b64encode(b"12345678").decode()
    payload = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": small}}]}]}
    to_gemini(payload, FLASH, stream=False)
    payload["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": small}})
    with pytest.raises(InvalidRequest, match="limited to"):
        to_gemini(payload, FLASH, stream=False)
    fetched = {"https://x.test/a.png": ("image/png", b"0" * 11)}
    remote = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]}
    with pytest.raises(InvalidRequest, match="limited to"):
        to_gemini(remote, FLASH, stream=False, images=fetched)


@pytest.mark.parametrize(
    ("payload", "stream", "match"),
    [
        ({"messages": [{"role": "system", "content": "only"}]}, False, "at least one user message"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, True, "'n' greater than 1"),
        ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}]}, False,
         "matches no tool call"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "[1]"}}]}]},
         False, "must be a JSON object"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]},
         False, "not valid base64"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}]}]},
         False, "not an image"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
         False, "http\\(s\\) or a data URL"),
        ({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}, False, "not supported"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}, False, "function tool"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER], "tool_choice": "sometimes"}, False, "tool_choice"),
        ({"messages": [{"role": "narrator", "content": "x"}]}, False, "not supported"),
    ],
)
def test_requests_gemini_cannot_take_are_refused(payload: dict[str, Any], stream: bool, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        to_gemini(payload, FLASH, stream=stream)


@pytest.mark.parametrize("signature", [SIG, "CiQB/+8=", "skip", "abc_-xyz"])
def test_call_ids_carry_signatures(signature: str) -> None:
    call_id = encode_call_id(signature)
    assert call_id.startswith("call_") and all(c.isalnum() or c in "_-" for c in call_id)
    decoded = decode_call_id(call_id)
    assert decoded is not None
    assert base64.urlsafe_b64decode(decoded.replace("+", "-").replace("/", "_")) == base64.urlsafe_b64decode(
        signature.replace("+", "-").replace("/", "_") + "=" * (-len(signature) % 4))
    assert decode_call_id("call_plain") is None and decode_call_id(None) is None
    assert encode_call_id(None) != encode_call_id(None)
    assert THOUGHT_SEPARATOR not in encode_call_id("not base64!")


# --------------------------------------------------------------------------- non-stream responses


def response(parts: list[dict[str, Any]] | None, finish: str = "STOP", **extra: Any) -> bytes:
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    if parts is not None:
        candidate["content"] = {"parts": parts, "role": "model"}
    body = {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                                                         "thoughtsTokenCount": 20, "totalTokenCount": 35},
            "modelVersion": FLASH, "responseId": "resp1", **extra}
    return json.dumps(body, indent=2).encode()


def test_text_and_thoughts_response() -> None:
    done = adapter.parse_response(response([{"text": "Let me think.", "thought": True}, {"text": "Hi "}, {"text": "there"}]))
    body = done.body
    ChatCompletion.model_validate(body)
    assert body["id"] == "chatcmpl-resp1" and body["object"] == "chat.completion"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hi there",
                                                        "reasoning_content": "Let me think.", "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert done.usage == Usage(prompt_tokens=10, completion_tokens=25, reasoning_tokens=20)
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 20}


def test_function_calls_finish_with_tool_calls_and_carry_the_signature() -> None:
    done = adapter.parse_response(response([
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ]))
    choice = done.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert decode_call_id(calls[0]["id"]) == SIG and decode_call_id(calls[1]["id"]) is None
    assert len({c["id"] for c in calls}) == 2


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
     ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"), ("IMAGE_SAFETY", "content_filter"),
     ("OTHER", "stop"), ("FINISH_REASON_UNSPECIFIED", "stop"), ("TOO_MANY_TOOL_CALLS", "stop")],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    parts = None if expected == "content_filter" else [{"text": "x"}]
    choice = adapter.parse_response(response(parts, finish)).body["choices"][0]
    assert choice["finish_reason"] == expected
    assert choice["message"]["content"] == ("x" if parts else "")


def test_blocked_prompt_is_a_content_filter_error() -> None:
    body = json.dumps({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                       "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}).encode()
    with pytest.raises(InvalidRequest) as caught:
        adapter.parse_response(body)
    assert caught.value.status == 400 and caught.value.code == "content_filter" and "SAFETY" in caught.value.message


def test_malformed_function_call_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(response(None, "MALFORMED_FUNCTION_CALL", ))
    assert caught.value.code == "upstream_malformed_function_call"


@pytest.mark.parametrize("body", [b"{\"error\": {\"code\": 500, \"message\": \"boom\", \"status\": \"INTERNAL\"}}",
                                  b"{\"candidates\": []}", b"{\"candid", b"[]"])
def test_unusable_bodies_are_upstream_errors(body: bytes) -> None:
    with pytest.raises(UpstreamError):
        adapter.parse_response(body)


def test_several_candidates_become_several_choices() -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "a"}], "role": "model"}, "finishReason": "STOP", "index": 0},
                           {"content": {"parts": [{"text": "b"}], "role": "model"}, "finishReason": "MAX_TOKENS", "index": 1}]}
    choices = adapter.parse_response(json.dumps(body).encode()).body["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [(0, "a", "stop"), (1, "b", "length")]


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110}, Usage(100, 10)),
        ({"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 10, "thoughtsTokenCount": 30,
          "toolUsePromptTokenCount": 5, "totalTokenCount": 145}, Usage(105, 40, cached_tokens=60, reasoning_tokens=30)),
        ({"promptTokenCount": 100, "candidatesTokenCount": 40, "thoughtsTokenCount": 30, "totalTokenCount": 140},
         Usage(100, 40, reasoning_tokens=30)),  # candidates already include thoughts: counted once
        ({"promptTokenCount": 7, "totalTokenCount": 7}, Usage(7, 0)),
        ({}, Usage()),
    ],
)
def test_usage_mapping(meta: dict[str, Any], expected: Usage) -> None:
    assert read_usage(meta) == expected


def test_error_helpers() -> None:
    quota = json.dumps({"error": {"code": 429, "message": "You exceeded your current quota", "status": "RESOURCE_EXHAUSTED",
                                  "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37.5s"}]}})
    assert adapter.error_detail(quota.encode()) == "You exceeded your current quota"
    assert retry_after_from_body(quota.encode()) == "38"
    assert adapter.error_detail(b'[{"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}]') == (
        "models/x is not found")
    assert adapter.error_detail(b"<html>404</html>") == "<html>404</html>"
    bad_key = {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
                         "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}
    assert credentials_rejected(400, json.dumps(bad_key).encode())
    assert not credentials_rejected(400, b'{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}')
    assert credentials_rejected(403, b"")


# --------------------------------------------------------------------------- streams from transcripts


def events_of(raw: bytes, piece: int = 7) -> list[Event]:
    decoder = SSEDecoder()
    events: list[Event] = []
    for i in range(0, len(raw), piece):  # small reads: CRLFs and events split across them
        events += decoder.feed(raw[i : i + piece])
    return events + decoder.close()


def run_stream(name: str) -> tuple[ReadStream, list[dict[str, Any]]]:
    raw = (FIXTURES / name).read_bytes()
    assert b"\r\n\r\n" in raw and b"[DONE]" not in raw
    stream = ReadStream(adapter, "google/gemini-test")
    chunks: list[dict[str, Any]] = []
    for event in events_of(raw):
        chunks += stream.feed(event)
    chunks += stream.close()
    return stream, chunks


def reassemble(chunks: list[dict[str, Any]]) -> Any:
    state = ChatCompletionStreamState()
    for chunk in chunks:
        assert chunk["choices"][0]["index"] == 0 and chunk["model"] == "google/gemini-test"
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    if state.current_completion_snapshot.choices[0].finish_reason in ("length", "content_filter"):
        return state.current_completion_snapshot  # get_final_completion refuses to parse these
    return state.get_final_completion()


def test_stream_text_with_thoughts() -> None:
    stream, chunks = run_stream("text_with_thoughts.sse")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert sum(1 for c in chunks if c["choices"][0]["finish_reason"]) == 1
    assert len({c["id"] for c in chunks}) == 1
    final = reassemble(chunks)
    message = final.choices[0].message
    assert message.content == "Hello there! How can I help?"
    assert message.model_extra["reasoning_content"] == "**Weighing the greeting** The user says hi."
    assert final.choices[0].finish_reason == "stop"
    assert stream.finished and stream.finish_reason == "stop" and stream.error is None
    assert stream.usage == Usage(prompt_tokens=15, completion_tokens=34, cached_tokens=8, reasoning_tokens=27)


def test_stream_parallel_tool_calls() -> None:
    stream, chunks = run_stream("parallel_tools.sse")
    deltas = [c["choices"][0]["delta"].get("tool_calls") for c in chunks]
    indexes = [d[0]["index"] for d in deltas if d]
    assert indexes == [0, 1]
    final = reassemble(chunks)
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and stream.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome", "unit": "celsius"})]
    assert decode_call_id(calls[0].id) == SIG and decode_call_id(calls[1].id) is None
    assert stream.usage == Usage(prompt_tokens=41, completion_tokens=57, reasoning_tokens=55)
    # echoing the reassembled message back yields signed functionCall parts for the next turn
    echoed = {"role": "assistant", "content": None,
              "tool_calls": [c.model_dump(include={"id", "type", "function"}) for c in calls]}
    history = {"messages": [{"role": "user", "content": "Weather?"}, echoed,
                            *({"role": "tool", "tool_call_id": c.id, "content": "sunny"} for c in calls)]}
    model_turn = to_gemini(history, "gemini-3-flash-preview", stream=False)["contents"][1]
    assert [p.get("thoughtSignature") for p in model_turn["parts"]] == [SIG, None]


def test_stream_blocked_prompt_sets_error() -> None:
    stream, chunks = run_stream("blocked_prompt.sse")
    assert chunks == [] and not stream.finished
    assert stream.error is not None and stream.error["code"] == "content_filter" and "PROHIBITED_CONTENT" in stream.error["message"]
    assert stream.usage == Usage(prompt_tokens=9)


def test_stream_safety_finish() -> None:
    stream, chunks = run_stream("safety_finish.sse")
    final = reassemble(chunks)
    assert final.choices[0].message.content == "Here is how"
    assert final.choices[0].finish_reason == "content_filter" and stream.finished


def test_stream_malformed_call_and_mid_stream_error() -> None:
    stream, chunks = run_stream("malformed_call.sse")
    assert chunks == [] and not stream.finished
    assert stream.error is not None and stream.error["code"] == "upstream_malformed_function_call"
    stream, chunks = run_stream("error_mid.sse")
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["Hel"]
    assert stream.error == {"message": "An internal error has occurred. Please retry or report in "
                            "https://developers.generativeai.google/guide/troubleshooting",
                            "type": "upstream_error", "code": "INTERNAL"}
    assert not stream.finished


def test_stream_finish_without_content_still_opens_with_the_role() -> None:
    stream = ReadStream(adapter, "m")
    chunks = stream.feed(Event(b"", b'{"candidates": [{"finishReason": "MAX_TOKENS","index": 0}]}'))
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}]
    assert chunks[0]["choices"][0]["finish_reason"] == "length"
    with pytest.raises(MalformedChunk):
        stream.feed(Event(b"", b"not json"))


# --------------------------------------------------------------------------- real HTTP round trips against the fake Gemini


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app(api_keys={API_KEY}, token_delay=0.0)).start()
    yield srv
    srv.stop()


@pytest.fixture
def state(server: ServerThread) -> FakeGeminiState:
    st = server.app[STATE_KEY]
    st.reset()
    return st


def call(server: ServerThread, payload: dict[str, Any], model: str, *, stream: bool, key: str = API_KEY) -> tuple[int, bytes]:
    request = adapter.build_request(payload, model, channel(server.url, key), stream=stream)
    parts = urlsplit(request.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", parts.path + (f"?{parts.query}" if parts.query else ""), body=request.body, headers=request.headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def complete(server: ServerThread, payload: dict[str, Any], model: str) -> dict[str, Any]:
    status, body = call(server, payload, model, stream=False)
    assert status == 200, body
    return adapter.parse_response(body).body


def stream_chunks(server: ServerThread, payload: dict[str, Any], model: str) -> tuple[ReadStream, list[dict[str, Any]]]:
    status, body = call(server, payload, model, stream=True)
    assert status == 200, body
    stream = ReadStream(adapter, "google/gemini-test")
    chunks: list[dict[str, Any]] = []
    for event in events_of(body, piece=64):
        chunks += stream.feed(event)
    return stream, chunks


def test_http_plain(server: ServerThread, state: FakeGeminiState) -> None:
    payload = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi #fake:cached=2"}]}
    body = complete(server, payload, FLASH)
    assert body["choices"][0]["message"]["content"] == "Hello! This is a fake reply."
    assert body["usage"]["prompt_tokens"] == 5 and body["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
    recorded = state.requests[-1]
    assert recorded.headers["x-goog-api-key"] == API_KEY and recorded.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    stream, chunks = stream_chunks(server, payload, GEMINI_3)  # gemini-3 ends with an empty signed text part
    final = reassemble(chunks)
    assert final.choices[0].message.content == "Hello! This is a fake reply." and stream.finish_reason == "stop"
    assert stream.usage == Usage(prompt_tokens=5, completion_tokens=6, cached_tokens=2)


@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "non-stream"])
def test_http_tool_loop_on_gemini_3(server: ServerThread, state: FakeGeminiState, streamed: bool) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris and Rome? #fake:tools"}]
    payload = {"messages": messages, "tools": [WEATHER], "tool_choice": "auto"}
    if streamed:
        stream, chunks = stream_chunks(server, payload, GEMINI_3)
        assert stream.finish_reason == "tool_calls"
        message = reassemble(chunks).choices[0].message.model_dump(exclude_none=True)
    else:
        choice = complete(server, payload, GEMINI_3)["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        message = choice["message"]
    calls = message["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    messages.append(message)  # echoed back as the client got it
    messages += [{"role": "tool", "tool_call_id": c["id"], "content": json.dumps({"temp_c": 18 + i})} for i, c in enumerate(calls)]
    body = complete(server, {"messages": messages, "tools": [WEATHER]}, GEMINI_3)  # the fake checks the signature
    assert body["choices"][0]["message"]["content"] == "Hello! This is a fake reply."
    sent = state.requests[-1].json["contents"]
    assert sent[1]["parts"][0]["thoughtSignature"] in state.signatures
    assert [p["functionResponse"]["name"] for p in sent[2]["parts"]] == ["get_weather", "get_weather"]


def test_http_tool_loop_fails_without_the_signature_when_ids_are_rewritten(server: ServerThread, state: FakeGeminiState) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather? #fake:tools"}]
    message = complete(server, {"messages": messages, "tools": [WEATHER]}, GEMINI_3)["choices"][0]["message"]
    for i, tool_call in enumerate(message["tool_calls"]):
        tool_call["id"] = f"rewritten_{i}"  # a client that mints its own ids loses the signature ...
    messages += [message, *({"role": "tool", "tool_call_id": f"rewritten_{i}", "content": "sunny"} for i in range(2))]
    complete(server, {"messages": messages, "tools": [WEATHER]}, GEMINI_3)  # ... and the skip value keeps the turn valid
    assert state.requests[-1].json["contents"][1]["parts"][0]["thoughtSignature"] == SKIP_SIGNATURE


def test_http_thinking(server: ServerThread, state: FakeGeminiState) -> None:
    payload = {"messages": [{"role": "user", "content": "Think #fake:thinking=4"}], "reasoning_effort": "low"}
    body = complete(server, payload, FLASH)
    assert body["choices"][0]["message"]["reasoning_content"] == "Let me think about"
    assert body["usage"]["completion_tokens"] == 10 and body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 4
    stream, chunks = stream_chunks(server, payload, GEMINI_3)
    final = reassemble(chunks)
    assert final.choices[0].message.model_extra["reasoning_content"] == "Let me think about"
    assert stream.usage == Usage(prompt_tokens=2, completion_tokens=10, reasoning_tokens=4)
    assert state.requests[-1].json["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "LOW", "includeThoughts": True}


def test_http_json_schema(server: ServerThread, state: FakeGeminiState) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": False}
    payload = {"messages": [{"role": "user", "content": "Answer"}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}}}
    complete(server, payload, FLASH)
    config = state.requests[-1].json["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_http_blocked_prompt_and_errors(server: ServerThread, state: FakeGeminiState) -> None:
    status, body = call(server, {"messages": [{"role": "user", "content": "x #fake:blocked_prompt"}]}, FLASH, stream=False)
    assert status == 200
    with pytest.raises(InvalidRequest, match="blockReason SAFETY"):
        adapter.parse_response(body)
    stream, chunks = stream_chunks(server, {"messages": [{"role": "user", "content": "x #fake:blocked_prompt"}]}, FLASH)
    assert chunks == [] and stream.error is not None and stream.error["code"] == "content_filter"
    stream, chunks = stream_chunks(server, {"messages": [{"role": "user", "content": "x #fake:malformed_call"}], "tools": [WEATHER]},
                                   FLASH)
    assert stream.error is not None and stream.error["code"] == "upstream_malformed_function_call"
    status, body = call(server, {"messages": [{"role": "user", "content": "x"}]}, FLASH, stream=False, key="wrong")
    assert status == 400 and credentials_rejected(status, body)
    assert adapter.error_detail(body) == "API key not valid. Please pass a valid API key."
    status, body = call(server, {"messages": [{"role": "user", "content": "x #fake:status=429 #fake:retry_after=7"}]}, FLASH,
                        stream=True)
    assert status == 429 and retry_after_from_body(body) == "7"
