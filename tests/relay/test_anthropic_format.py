"""Anthropic Messages inbound (client speaks Anthropic, the gateway OpenAI chat): pure translation.

Stream output is parsed back with the anthropic SDK's own accumulator (``accumulate_event``) and
every event is validated against the SDK's event types, so the bytes are what the SDK rebuilds.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent

from tests.support.reading import ReadStream
from tokenhub.errors import InvalidRequest
from tokenhub.providers.anthropic.adapter import AnthropicAdapter
from tokenhub.providers.anthropic.inbound import to_openai_request, translate_messages_request
from tokenhub.providers.anthropic.inbound_turns import Untranslatable, upstream_tool_name
from tokenhub.providers.anthropic.message import anthropic_usage, error_body, new_message_id, to_anthropic_message
from tokenhub.providers.anthropic.request import translate_request
from tokenhub.providers.anthropic.wire import LEGACY_VERSION
from tokenhub.providers.anthropic.writer import AnthropicStreamWriter
from tokenhub.sse import SSEDecoder
from tokenhub.tokens import Usage, estimate_tokens

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "anthropic"
EVENTS = pydantic.TypeAdapter(RawMessageStreamEvent)
MODEL = "openai/gpt-4.1"
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {"name": "get_weather", "description": "Weather by city", "input_schema": WEATHER_SCHEMA}
WEATHER_FN = {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                               "parameters": WEATHER_SCHEMA}}
LONG_NAME = "mcp__some_very_long_server_name__and_an_even_longer_tool_name_that_goes_on_and_on"
SIG = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"


def req(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    return body


def out(**fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100}
    payload.update(fields)
    return payload


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def tool_use(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def tool_result(call_id: str, content: Any = None, **extra: Any) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": call_id, **extra}
    if content is not None:
        block["content"] = content
    return block


def oai_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
PNG_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
PDF = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}, "title": "spec.pdf"}
PDF_PART = {"type": "file", "file": {"filename": "spec.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}

# --------------------------------------------------------------------------- request: mappings

REQUEST_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("minimal", req(), out()),
    ("system string", req(system="Be terse."), out(messages=[{"role": "system", "content": "Be terse."},
                                                             {"role": "user", "content": "Hi"}])),
    ("system blocks joined, cache_control dropped",
     req(system=[text("A.", cache_control={"type": "ephemeral"}), text("B.")]),
     out(messages=[{"role": "system", "content": "A.\n\nB."}, {"role": "user", "content": "Hi"}])),
    ("claude code billing header stripped",
     req(system=[text("x-anthropic-billing-header: cc_version=2.1.37.0d9; cc_entrypoint=cli; cch=fa690;"),
                 text("You are Claude Code."), text("Rules.")]),
     out(messages=[{"role": "system", "content": "You are Claude Code.\n\nRules."}, {"role": "user", "content": "Hi"}])),
    ("billing header line in a system string",
     req(system="x-anthropic-billing-header: cc_version=1; cch=1;\nYou are Claude Code."),
     out(messages=[{"role": "system", "content": "You are Claude Code."}, {"role": "user", "content": "Hi"}])),
    ("system role message in place",
     req(messages=[{"role": "user", "content": "Hi"}, {"role": "system", "content": [text("Now be brief.")]}]),
     out(messages=[{"role": "user", "content": "Hi"}, {"role": "system", "content": "Now be brief."}])),
    ("text blocks of a turn joined, empty ones dropped",
     req(messages=[user(text("<reminder>"), text("  "), text("Question?"))]),
     out(messages=[{"role": "user", "content": "<reminder>\n\nQuestion?"}])),
    ("images: base64 and url",
     req(messages=[user(text("What is this?"), PNG, {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}})]),
     out(messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, PNG_PART,
                                                 {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}]}])),
    ("documents: pdf -> file part, text source -> text, content source -> parts",
     req(messages=[user(PDF,
                        {"type": "document", "title": "notes", "context": "ignored",
                         "source": {"type": "text", "media_type": "text/plain", "data": "plain body"}},
                        {"type": "document", "source": {"type": "content", "content": [text("c1"), PNG]}},
                        {"type": "document", "source": {"type": "content", "content": "c2"}})]),
     out(messages=[{"role": "user", "content": [PDF_PART, {"type": "text", "text": "notes\n\nplain body"},
                                                 {"type": "text", "text": "c1"}, PNG_PART, {"type": "text", "text": "c2"}]}])),
    ("pdf without title gets a filename",
     req(messages=[user({"type": "document", "source": PDF["source"]})]),
     out(messages=[{"role": "user", "content": [{"type": "file", "file": {"filename": "document.pdf",
                                                                           "file_data": PDF_PART["file"]["file_data"]}}]}])),
    ("search_result -> text",
     req(messages=[user({"type": "search_result", "title": "T", "source": "https://s.test",
                         "content": [text("r1"), text("r2")]})]),
     out(messages=[{"role": "user", "content": "T — https://s.test\nr1\nr2"}])),
    ("tool use and results: tool messages first, in order, then the user's text",
     req(messages=[user(text("Weather in Paris and Rome?")),
                   assistant(text("Checking."), tool_use("toolu_1", "get_weather", {"city": "Paris"}),
                             tool_use("toolu_2", "get_weather", {"city": "Rome"})),
                   user(text("thanks"), tool_result("toolu_1", "18C"),
                        tool_result("toolu_2", [text("20C"), text("sunny")]))]),
     out(messages=[{"role": "user", "content": "Weather in Paris and Rome?"},
                   {"role": "assistant", "content": "Checking.",
                    "tool_calls": [oai_call("toolu_1", "get_weather", '{"city":"Paris"}'),
                                   oai_call("toolu_2", "get_weather", '{"city":"Rome"}')]},
                   {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                   {"role": "tool", "tool_call_id": "toolu_2", "content": "20C\nsunny"},
                   {"role": "user", "content": "thanks"}])),
    ("tool-only assistant turn has null content; is_error prefixed; empty result",
     req(messages=[user(text("go")), assistant(tool_use("t1", "run", {})), user(tool_result("t1", "boom", is_error=True)),
                   assistant(tool_use("t2", "run", {"a": [1, {"b": None}]})), user(tool_result("t2"))]),
     out(messages=[{"role": "user", "content": "go"},
                   {"role": "assistant", "content": None, "tool_calls": [oai_call("t1", "run", "{}")]},
                   {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
                   {"role": "assistant", "content": None, "tool_calls": [oai_call("t2", "run", '{"a":[1,{"b":null}]}')]},
                   {"role": "tool", "tool_call_id": "t2", "content": ""}])),
    ("images inside a tool result follow in a user message",
     req(messages=[user(text("shot")), assistant(tool_use("t1", "screenshot", {})),
                   user(tool_result("t1", [text("here"), PNG, {"type": "tool_reference", "tool_name": "x"}]), text("ok?"))]),
     out(messages=[{"role": "user", "content": "shot"},
                   {"role": "assistant", "content": None, "tool_calls": [oai_call("t1", "screenshot", "{}")]},
                   {"role": "tool", "tool_call_id": "t1", "content": "here"},
                   {"role": "user", "content": [PNG_PART, {"type": "text", "text": "ok?"}]}])),
    ("thinking with signature -> reasoning_details + reasoning_content; redacted -> encrypted",
     req(messages=[user(text("q")),
                   assistant({"type": "redacted_thinking", "data": "REDACTED"},
                             {"type": "thinking", "thinking": "Need the tool.", "signature": SIG},
                             tool_use("toolu_1", "get_weather", {"city": "Paris"})),
                   user(tool_result("toolu_1", "18C"))]),
     out(messages=[{"role": "user", "content": "q"},
                   {"role": "assistant", "content": None,
                    "tool_calls": [oai_call("toolu_1", "get_weather", '{"city":"Paris"}')],
                    "reasoning_content": "Need the tool.",
                    "reasoning_details": [
                        {"type": "reasoning.encrypted", "data": "REDACTED", "format": "anthropic-claude-v1", "index": 0},
                        {"type": "reasoning.text", "text": "Need the tool.", "signature": SIG,
                         "format": "anthropic-claude-v1", "index": 1}]},
                   {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}])),
    ("unsigned thinking -> reasoning_content only; server-tool blocks dropped",
     req(messages=[user(text("q")),
                   assistant({"type": "thinking", "thinking": "hmm", "signature": ""},
                             {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                             {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                             text("Answer.")),
                   user(text("more"))]),
     out(messages=[{"role": "user", "content": "q"},
                   {"role": "assistant", "content": "Answer.", "reasoning_content": "hmm"},
                   {"role": "user", "content": "more"}])),
    ("assistant prefill string kept",
     req(messages=[{"role": "user", "content": "Pick"}, {"role": "assistant", "content": "The answer is ("}]),
     out(messages=[{"role": "user", "content": "Pick"}, {"role": "assistant", "content": "The answer is ("}])),
    ("custom tools; server tools dropped; tool_choice auto",
     req(tools=[WEATHER, {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "strict": True,
                          "cache_control": {"type": "ephemeral"}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                {"type": "bash_20250124", "name": "bash"}],
         tool_choice={"type": "auto"}),
     out(tools=[WEATHER_FN, {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}],
         tool_choice="auto")),
    ("tool_choice any + disable_parallel_tool_use", req(tools=[WEATHER], tool_choice={"type": "any", "disable_parallel_tool_use": True}),
     out(tools=[WEATHER_FN], tool_choice="required", parallel_tool_calls=False)),
    ("tool_choice tool", req(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"}),
     out(tools=[WEATHER_FN], tool_choice={"type": "function", "function": {"name": "get_weather"}})),
    ("tool_choice none", req(tools=[WEATHER], tool_choice={"type": "none", }), out(tools=[WEATHER_FN], tool_choice="none")),
    ("auto + disable_parallel", req(tools=[WEATHER], tool_choice={"type": "auto", "disable_parallel_tool_use": True}),
     out(tools=[WEATHER_FN], tool_choice="auto", parallel_tool_calls=False)),
    ("tool_choice naming a dropped server tool is omitted",
     req(tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search"}], tool_choice={"type": "tool", "name": "web_search"}),
     out(tools=[WEATHER_FN])),
    ("only server tools: no tools, no tool_choice",
     req(tools=[{"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}], tool_choice={"type": "any"}),
     out()),
    ("sampling, stop, stream, user",
     req(temperature=0.3, top_p=0.9, stop_sequences=["END", "STOP"], stream=True, metadata={"user_id": "u_123"}),
     out(temperature=0.3, top_p=0.9, stop=["END", "STOP"], stream=True, stream_options={"include_usage": True},
         user="u_123")),
    ("stream false and empty stop list add nothing", req(stream=False, stop_sequences=[], metadata={}), out()),
    ("long user_id hashed", req(metadata={"user_id": "user_" + "a" * 64 + "_account_x_session_y"}),
     out(user=hashlib.sha256(("user_" + "a" * 64 + "_account_x_session_y").encode()).hexdigest())),
    ("thinking budget < 4096 -> low", req(thinking={"type": "enabled", "budget_tokens": 4000}), out(reasoning_effort="low")),
    ("thinking budget < 16384 -> medium", req(thinking={"type": "enabled", "budget_tokens": 10000}),
     out(reasoning_effort="medium")),
    ("thinking budget 16384 -> high", req(thinking={"type": "enabled", "budget_tokens": 16384}), out(reasoning_effort="high")),
    ("adaptive alone sets nothing", req(thinking={"type": "adaptive"}), out()),
    ("disabled sets nothing", req(thinking={"type": "disabled"}), out()),
    ("adaptive + effort", req(thinking={"type": "adaptive", "display": "summarized"}, output_config={"effort": "medium"}),
     out(reasoning_effort="medium")),
    ("effort wins over a budget", req(thinking={"type": "enabled", "budget_tokens": 2000}, output_config={"effort": "high"}),
     out(reasoning_effort="high")),
    ("effort xhigh -> high", req(output_config={"effort": "xhigh"}), out(reasoning_effort="high")),
    ("effort max -> high", req(output_config={"effort": "max"}), out(reasoning_effort="high")),
    ("effort low without thinking", req(output_config={"effort": "low"}), out(reasoning_effort="low")),
    ("output_config.format -> response_format",
     req(output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}),
     out(response_format={"type": "json_schema", "json_schema": {"name": "output", "schema": WEATHER_SCHEMA}})),
    ("deprecated output_format", req(output_format={"type": "json_schema", "schema": WEATHER_SCHEMA}),
     out(response_format={"type": "json_schema", "json_schema": {"name": "output", "schema": WEATHER_SCHEMA}})),
    ("anthropic-only fields dropped",
     req(top_k=5, cache_control={"type": "ephemeral"}, context_management={"edits": [{"type": "clear_thinking_20251015"}]},
         container="c", mcp_servers=[], service_tier="auto", inference_geo="us", speed="fast"),
     out()),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES])
def test_request_mapping(body: dict[str, Any], expected: dict[str, Any]) -> None:
    original = copy.deepcopy(body)
    assert to_openai_request(body) == expected
    assert body == original  # the client's body is not modified


def test_translation_notes() -> None:
    body = req(tools=[WEATHER, {"type": "web_search_20250305", "name": "web_search"}, {"type": "computer_20250124",
                                                                                       "name": "computer"},
                      {"type": "memory_20250818"}],
               top_k=3, context_management={}, cache_control={"type": "ephemeral"}, container="x", mcp_servers=[],
               service_tier="auto")
    translation = translate_messages_request(body)
    assert translation.dropped_tools == ["web_search", "computer", "memory_20250818"]
    assert translation.dropped_fields == ["cache_control", "container", "context_management", "mcp_servers",
                                          "service_tier", "top_k"]
    assert translation.tool_names == {}
    assert translation.payload == to_openai_request(body)


def test_long_tool_names_shortened_everywhere_and_mapped_back() -> None:
    short = upstream_tool_name(LONG_NAME)
    assert len(LONG_NAME) > 64 and len(short) == 64 and short.startswith(LONG_NAME[:55])
    assert upstream_tool_name(LONG_NAME) == short and upstream_tool_name("get_weather") == "get_weather"
    body = req(tools=[{"name": LONG_NAME, "input_schema": {"type": "object"}}], tool_choice={"type": "tool", "name": LONG_NAME},
               messages=[user(text("go")), assistant(tool_use("t1", LONG_NAME, {})), user(tool_result("t1", "done"))])
    translation = translate_messages_request(body)
    payload = translation.payload
    assert payload["tools"][0]["function"]["name"] == short
    assert payload["tool_choice"] == {"type": "function", "function": {"name": short}}
    assert payload["messages"][1]["tool_calls"][0]["function"]["name"] == short
    assert translation.tool_names == {short: LONG_NAME}

    completion = {"choices": [{"index": 0, "finish_reason": "tool_calls",
                               "message": {"role": "assistant", "content": None,
                                           "tool_calls": [oai_call("call_1", short, "{}")]}}]}
    message = to_anthropic_message(completion, Usage(), "m", "msg_1", tool_names=translation.tool_names)
    assert message["content"][0]["name"] == LONG_NAME
    writer = AnthropicStreamWriter("m", "msg_1", tool_names=translation.tool_names)
    data = writer.chunks([chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                 "function": {"name": short, "arguments": "{}"}}]})])
    final = accumulate(data + writer.finish(Usage(), "tool_calls"))
    assert final.content[0].name == LONG_NAME  # type: ignore[union-attr]


# --------------------------------------------------------------------------- request: refusals

REFUSALS: list[tuple[str, Any, str | None]] = [
    ("body not an object", ["x"], None),
    ("model missing", {"max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}, "model"),
    ("model empty", req(model=" "), "model"),
    ("model not a string", req(model=3), "model"),
    ("max_tokens missing", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}, "max_tokens"),
    ("max_tokens zero (Anthropic-only cache pre-warm)", req(max_tokens=0), "max_tokens"),
    ("max_tokens negative", req(max_tokens=-1), "max_tokens"),
    ("max_tokens string", req(max_tokens="100"), "max_tokens"),
    ("max_tokens bool", req(max_tokens=True), "max_tokens"),
    ("messages missing", {"model": MODEL, "max_tokens": 5}, "messages"),
    ("messages empty", req(messages=[]), "messages"),
    ("messages not a list", req(messages={"role": "user"}), "messages"),
    ("message not an object", req(messages=["Hi"]), "messages"),
    ("only empty content", req(messages=[{"role": "user", "content": ""}, user(text(" "))]), "messages"),
    ("only a system message", req(messages=[{"role": "system", "content": "Be nice."}]), "messages"),
    ("bad role", req(messages=[{"role": "tool", "content": "x"}]), "messages"),
    ("role missing", req(messages=[{"content": "x"}]), "messages"),
    ("content missing", req(messages=[{"role": "user"}]), "messages"),
    ("content a number", req(messages=[{"role": "user", "content": 3}]), "messages"),
    ("block without type", req(messages=[user({"text": "x"})]), "messages"),
    ("block not an object", req(messages=[user("x")]), "messages"),
    ("unknown block type", req(messages=[user({"type": "hologram"})]), "messages"),
    ("unknown assistant block", req(messages=[user(text("q")), assistant({"type": "hologram"})]), "messages"),
    ("text block without text", req(messages=[user({"type": "text"})]), "messages"),
    ("image without source", req(messages=[user({"type": "image"})]), "messages"),
    ("image base64 without data", req(messages=[user({"type": "image", "source": {"type": "base64", "media_type": "image/png"}})]),
     "messages"),
    ("image base64 non-image type",
     req(messages=[user({"type": "image", "source": {"type": "base64", "media_type": "text/html", "data": "x"}})]), "messages"),
    ("image file id", req(messages=[user({"type": "image", "source": {"type": "file", "file_id": "file_1"}})]), "messages"),
    ("image unknown source", req(messages=[user({"type": "image", "source": {"type": "s3"}})]), "messages"),
    ("document url", req(messages=[user({"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}})]),
     "messages"),
    ("document file id", req(messages=[user({"type": "document", "source": {"type": "file", "file_id": "f"}})]), "messages"),
    ("document base64 non-pdf",
     req(messages=[user({"type": "document", "source": {"type": "base64", "media_type": "image/png", "data": "x"}})]),
     "messages"),
    ("tool_result without id", req(messages=[user({"type": "tool_result", "content": "x"})]), "messages"),
    ("tool_result bad inner block", req(messages=[user(tool_result("t", [{"type": "tool_use"}]))]), "messages"),
    ("tool_use in a user turn", req(messages=[user(tool_use("t", "n", {}))]), "messages"),
    ("thinking in a user turn", req(messages=[user({"type": "thinking", "thinking": "x", "signature": "s"})]), "messages"),
    ("tool_result in an assistant turn", req(messages=[user(text("q")), assistant(tool_result("t", "x"))]), "messages"),
    ("image in an assistant turn", req(messages=[user(text("q")), assistant(PNG)]), "messages"),
    ("tool_use without id", req(messages=[user(text("q")), assistant({"type": "tool_use", "name": "n", "input": {}})]),
     "messages"),
    ("tool_use input not an object", req(messages=[user(text("q")), assistant(tool_use("t", "n", "x"))]), "messages"),  # type: ignore[arg-type]
    ("thinking without signature", req(messages=[user(text("q")), assistant({"type": "thinking", "thinking": "x"})]),
     "messages"),
    ("redacted_thinking without data", req(messages=[user(text("q")), assistant({"type": "redacted_thinking"})]), "messages"),
    ("system a number", req(system=3), "system"),
    ("system non-text block", req(system=[PNG]), "system"),
    ("temperature above 1", req(temperature=1.5), "temperature"),
    ("temperature a string", req(temperature="0.5"), "temperature"),
    ("top_p negative", req(top_p=-0.1), "top_p"),
    ("stop_sequences a string", req(stop_sequences="END"), "stop_sequences"),
    ("stop_sequences with a number", req(stop_sequences=["a", 1]), "stop_sequences"),
    ("stream a string", req(stream="yes"), "stream"),
    ("metadata a string", req(metadata="u"), "metadata"),
    ("metadata.user_id a number", req(metadata={"user_id": 5}), "metadata.user_id"),
    ("tools not a list", req(tools={"name": "x"}), "tools"),
    ("tool without name", req(tools=[{"input_schema": {"type": "object"}}]), "tools"),
    ("tool without input_schema", req(tools=[{"name": "x"}]), "tools"),
    ("tool not an object", req(tools=["x"]), "tools"),
    ("tool_choice unknown type", req(tools=[WEATHER], tool_choice={"type": "function"}), "tool_choice"),
    ("tool_choice a string", req(tools=[WEATHER], tool_choice="auto"), "tool_choice"),
    ("tool_choice unknown tool", req(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}), "tool_choice"),
    ("tool_choice tool without name", req(tools=[WEATHER], tool_choice={"type": "tool"}), "tool_choice"),
    ("tool_choice invalid without tools", req(tool_choice={"type": "bogus"}), "tool_choice"),
    ("thinking unknown type", req(thinking={"type": "turbo"}), "thinking"),
    ("thinking budget too small", req(thinking={"type": "enabled", "budget_tokens": 512}), "thinking.budget_tokens"),
    ("thinking budget missing", req(thinking={"type": "enabled"}), "thinking.budget_tokens"),
    ("thinking not an object", req(thinking=True), "thinking"),
    ("unknown effort", req(output_config={"effort": "extreme"}), "output_config.effort"),
    ("output_config not an object", req(output_config="x"), "output_config"),
    ("format not json_schema", req(output_config={"format": {"type": "json_object"}}), "output_config.format"),
    ("format without schema", req(output_config={"format": {"type": "json_schema"}}), "output_config.format"),
]


@pytest.mark.parametrize(("body", "param"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_request_refusals(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_openai_request(body)
    assert info.value.status == 400
    assert info.value.param == param


UNTRANSLATABLE = req(max_tokens=0, messages=[user(
    {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
    {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
    {"type": "document", "source": {"type": "file", "file_id": "file_2"}}, text("Summarise."))])


def test_untranslatable_raised_by_default_collected_when_lenient() -> None:
    with pytest.raises(Untranslatable) as info:
        to_openai_request(UNTRANSLATABLE)
    assert info.value.status == 400 and info.value.param == "max_tokens"
    translation = translate_messages_request(UNTRANSLATABLE, lenient=True)  # for a native Anthropic route
    assert [e.param for e in translation.unsupported] == ["max_tokens", "messages", "messages", "messages"]
    assert translation.payload["max_tokens"] == 1
    assert translation.payload["messages"] == [{"role": "user", "content": "\n\n".join([
        "[image from the Files API omitted]", "[document omitted]", "[document from the Files API omitted]", "Summarise."])}]
    with pytest.raises(Untranslatable):
        translation.require_translatable()
    translate_messages_request(req(), lenient=True).require_translatable()  # nothing to complain about
    with pytest.raises(InvalidRequest) as invalid:  # what Anthropic itself rejects is refused even when lenient
        translate_messages_request(req(messages=[user({"type": "hologram"})]), lenient=True)
    assert not isinstance(invalid.value, Untranslatable)


# --------------------------------------------------------------------------- request: round trip through the outbound adapter


def normalized(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic request with string shorthands expanded into blocks."""
    out = copy.deepcopy(body)
    if isinstance(out.get("system"), str):
        out["system"] = [text(out["system"])]
    for message in out["messages"]:
        if isinstance(message["content"], str):
            message["content"] = [text(message["content"])]
    return out


ROUND_TRIPS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("plain text",
     {"model": "claude-sonnet-4-5", "max_tokens": 1000, "system": "Be terse.", "temperature": 0.5, "top_p": 0.9,
      "stop_sequences": ["END"], "metadata": {"user_id": "u_1"},
      "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                   {"role": "user", "content": [text("How are you?")]}]},
     []),
    ("tools and tool results",
     {"model": "claude-sonnet-4-5", "max_tokens": 1000,
      "tools": [WEATHER, {"name": "noop", "input_schema": {"type": "object", "properties": {}}}],
      "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
      "messages": [user(text("Weather in Paris and Rome?"), PNG),
                   assistant(text("Checking both."), tool_use("toolu_1", "get_weather", {"city": "Paris"}),
                             tool_use("toolu_2", "get_weather", {"city": "Rome"})),
                   user(tool_result("toolu_1", "18C"), tool_result("toolu_2", "20C"), text("And tomorrow?"))]},
     []),
    ("thinking with signatures (budget form)",
     {"model": "claude-sonnet-4-5", "max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 2048},
      "tools": [WEATHER],
      "messages": [user(text("Weather in Rome?")),
                   assistant({"type": "redacted_thinking", "data": "REDACTED"},
                             {"type": "thinking", "thinking": "User wants weather.", "signature": SIG},
                             tool_use("toolu_1", "get_weather", {"city": "Rome"})),
                   user(tool_result("toolu_1", "20C"))]},
     ["thinking"]),  # the budget is re-derived from the effort: compare the mode only
    ("thinking with signatures (adaptive + effort)",
     {"model": "claude-sonnet-4-6", "max_tokens": 8000, "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"},
      "tools": [WEATHER],
      "messages": [user(text("Weather in Rome?")),
                   assistant({"type": "thinking", "thinking": "Tool.", "signature": SIG},
                             tool_use("toolu_1", "get_weather", {"city": "Rome"})),
                   user(tool_result("toolu_1", "20C"))]},
     ["thinking"]),  # the outbound adapter adds display: summarized
]


@pytest.mark.parametrize(("body", "loose"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS])
def test_round_trip_through_outbound_adapter(body: dict[str, Any], loose: list[str]) -> None:
    payload = to_openai_request(body)
    back = translate_request(payload, body["model"], version=LEGACY_VERSION)
    expected = normalized(body)
    for key in loose:
        assert back.pop(key)["type"] == expected.pop(key)["type"]
    assert back == expected


# --------------------------------------------------------------------------- response

COMPLETION_BASE = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "upstream-model"}


def completion(message: dict[str, Any], finish: str | None = "stop", **choice: Any) -> dict[str, Any]:
    return {**COMPLETION_BASE, "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                            "finish_reason": finish, **choice}]}


USAGE = Usage(prompt_tokens=2100, completion_tokens=95, cached_tokens=1800, cache_write_tokens=250, reasoning_tokens=40)
USAGE_OUT = {"input_tokens": 50, "output_tokens": 95, "cache_creation_input_tokens": 250, "cache_read_input_tokens": 1800,
             "output_tokens_details": {"thinking_tokens": 40}}
PLAIN_USAGE = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

RESPONSE_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], str, Any]] = [
    ("text", completion({"content": "Hello."}), [text("Hello.")], "end_turn", None),
    ("empty text not emitted", completion({"content": ""}), [], "end_turn", None),
    ("whitespace text not emitted", completion({"content": "\n "}), [], "end_turn", None),
    ("content parts", completion({"content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}),
     [text("AB")], "end_turn", None),
    ("length", completion({"content": "Trunc"}, "length"), [text("Trunc")], "max_tokens", None),
    ("content_filter with refusal text", completion({"content": None, "refusal": "I can't help."}, "content_filter"),
     [text("I can't help.")], "refusal", None),
    ("unknown finish", completion({"content": "x"}, "weird"), [text("x")], "end_turn", None),
    ("vLLM matched stop string", completion({"content": "x"}, "stop", stop_reason="END"), [text("x")], "stop_sequence", "END"),
    ("vLLM eos token id", completion({"content": "x"}, "stop", stop_reason=2), [text("x")], "end_turn", None),
    ("tool calls: ids sanitized, bad arguments -> {}",
     completion({"content": "Checking.", "tool_calls": [oai_call("call_1", "get_weather", '{"city":"Rome"}'),
                                                        oai_call("call:2/x", "get_weather", "{not json"),
                                                        oai_call("call_3", "noop", "[1]")]}, "tool_calls"),
     [text("Checking."), tool_use("call_1", "get_weather", {"city": "Rome"}),
      tool_use("call_2_x_" + hashlib.sha256(b"call:2/x").hexdigest()[:16], "get_weather", {}), tool_use("call_3", "noop", {})],
     "tool_use", None),
    ("stop with tool calls is tool_use (Gemini)",
     completion({"content": None, "tool_calls": [oai_call("c1", "f", "{}")]}, "stop"), [tool_use("c1", "f", {})], "tool_use", None),
    ("tool_calls finish without calls is end_turn", completion({"content": "x"}, "tool_calls"), [text("x")], "end_turn", None),
    ("signed reasoning_details first, then text and tools",
     completion({"content": "Checking.", "reasoning_content": "Think.",
                 "reasoning_details": [{"type": "reasoning.encrypted", "data": "RED", "format": "anthropic-claude-v1", "index": 0},
                                       {"type": "reasoning.text", "text": "Think.", "signature": SIG,
                                        "format": "anthropic-claude-v1", "index": 1}],
                 "tool_calls": [oai_call("toolu_1", "get_weather", '{"city":"Rome"}')]}, "tool_calls"),
     [{"type": "redacted_thinking", "data": "RED"}, {"type": "thinking", "thinking": "Think.", "signature": SIG},
      text("Checking."), tool_use("toolu_1", "get_weather", {"city": "Rome"})], "tool_use", None),
    ("reasoning_content only -> thinking with empty signature",
     completion({"content": "42", "reasoning_content": "Let me think."}),
     [{"type": "thinking", "thinking": "Let me think.", "signature": ""}, text("42")], "end_turn", None),
    ("openrouter reasoning field", completion({"content": "42", "reasoning": "Hmm."}),
     [{"type": "thinking", "thinking": "Hmm.", "signature": ""}, text("42")], "end_turn", None),
    ("foreign-format details: no signature, no redacted block",
     completion({"content": "42", "reasoning_content": "R.",
                 "reasoning_details": [{"type": "reasoning.text", "text": "R.", "signature": "gemini-sig",
                                        "format": "google-gemini-v1", "index": 0},
                                       {"type": "reasoning.encrypted", "data": "enc", "format": "openai-responses-v1",
                                        "index": 1}]}),
     [{"type": "thinking", "thinking": "R.", "signature": ""}, text("42")], "end_turn", None),
    ("summary details", completion({"content": "ok", "reasoning_details": [{"type": "reasoning.summary", "summary": "S.",
                                                                             "index": 0}]}),
     [{"type": "thinking", "thinking": "S.", "signature": ""}, text("ok")], "end_turn", None),
    ("no choices", {**COMPLETION_BASE, "choices": []}, [], "end_turn", None),
]


@pytest.mark.parametrize(("body", "content", "stop", "stop_sequence"), [c[1:] for c in RESPONSE_CASES],
                         ids=[c[0] for c in RESPONSE_CASES])
def test_response_mapping(body: dict[str, Any], content: list[dict[str, Any]], stop: str, stop_sequence: Any) -> None:
    message = to_anthropic_message(body, Usage(), "claude-sonnet-4-6", "msg_abc")
    assert message == {"id": "msg_abc", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
                       "content": content, "stop_reason": stop, "stop_sequence": stop_sequence, "usage": PLAIN_USAGE}
    Message.model_validate(message)  # strict: the SDK's own type accepts it


def test_response_usage_and_sdk_type() -> None:
    message = to_anthropic_message(completion({"content": "Hi"}), USAGE, "m", "msg_1")
    assert message["usage"] == USAGE_OUT
    parsed = Message.model_validate(message)
    assert parsed.usage.cache_read_input_tokens == 1800 and parsed.usage.output_tokens_details is not None


@pytest.mark.parametrize(("usage", "expected"), [
    (Usage(), PLAIN_USAGE),
    (Usage(prompt_tokens=100, completion_tokens=7), {**PLAIN_USAGE, "input_tokens": 100, "output_tokens": 7}),
    (USAGE, USAGE_OUT),
    (Usage(prompt_tokens=10, cached_tokens=30, completion_tokens=1, reasoning_tokens=5),  # inconsistent upstream figures
     {"input_tokens": 0, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30,
      "output_tokens_details": {"thinking_tokens": 1}}),
])
def test_anthropic_usage(usage: Usage, expected: dict[str, Any]) -> None:
    assert anthropic_usage(usage) == expected


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (402, "billing_error"), (403, "permission_error"),
    (404, "not_found_error"), (409, "conflict_error"), (413, "request_too_large"), (422, "invalid_request_error"),
    (429, "rate_limit_error"), (500, "api_error"), (502, "api_error"), (503, "overloaded_error"), (504, "timeout_error"),
    (529, "overloaded_error"), (501, "api_error"),
])
def test_error_body(status: int, kind: str) -> None:
    assert error_body(status, "nope") == {"type": "error", "error": {"type": kind, "message": "nope"}}


def test_error_body_request_id_and_message_ids() -> None:
    assert error_body(429, "slow", request_id="req_1")["request_id"] == "req_1"
    ids = {new_message_id() for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("msg_") and len(i) == 28 for i in ids)


# --------------------------------------------------------------------------- stream


def chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish, **choice}]}


def events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    assert data.endswith(b"\n\n")
    out = []
    for block in data.decode().split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: ")
        name, payload = lines[0][7:], orjson.loads(lines[1][6:])
        assert payload["type"] == name
        out.append((name, payload))
    return out


def check_sequence(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Anthropic's exact order: message_start, ping, sequential blocks from index 0, message_delta, message_stop."""
    evs = events(data)
    names = [n for n, _ in evs]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    start = evs[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["type"] == "message"
    open_index, expected = None, 0
    for name, payload in evs[2:-2]:
        if name == "content_block_start":
            assert open_index is None and payload["index"] == expected
            open_index, expected = payload["index"], expected + 1
        elif name == "content_block_delta":
            assert payload["index"] == open_index
        elif name == "content_block_stop":
            assert payload["index"] == open_index
            open_index = None
        else:
            pytest.fail(f"unexpected {name} inside the message")
    assert open_index is None
    for name, payload in evs:
        if name != "ping":
            EVENTS.validate_python(payload)  # strict: the SDK's event types accept every event
    return evs


def accumulate(data: bytes) -> Any:
    return fold([payload for _, payload in events(data)])


def fold(payloads: list[dict[str, Any]]) -> Any:
    """The SDK's MessageStream accumulation: events folded into a Message snapshot."""
    snapshot = None
    bufs: dict[int, bytes] = {}
    for payload in payloads:
        if payload["type"] == "ping":
            continue
        assert payload["type"] != "error"
        snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=bufs)  # type: ignore[arg-type]
    return snapshot


def run(chunks: list[dict[str, Any]], usage: Usage = USAGE, finish: str | None = None, input_tokens: int = 2100,
        writer: AnthropicStreamWriter | None = None, split: bool = True) -> tuple[bytes, Any]:
    writer = writer or AnthropicStreamWriter("claude-sonnet-4-6", "msg_stream")
    data = writer.start(input_tokens)
    if split:
        for c in chunks:
            data += writer.chunks([c])
    else:
        data += writer.chunks(chunks)
    data += writer.finish(usage, finish)
    check_sequence(data)
    return data, accumulate(data)


def test_stream_text() -> None:
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({}), chunk({"content": "lo"}),
              chunk({}, "stop")]
    data, final = run(chunks)
    evs = events(data)
    assert evs[0][1]["message"]["usage"]["input_tokens"] == 2100 and evs[0][1]["message"]["id"] == "msg_stream"
    assert [n for n, _ in evs] == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
                                   "content_block_stop", "message_delta", "message_stop"]
    assert evs[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": USAGE_OUT}
    assert [b.model_dump(exclude_none=True) for b in final.content] == [text("Hello")]
    assert final.stop_reason == "end_turn" and final.model == "claude-sonnet-4-6" and final.id == "msg_stream"
    # message_delta's cumulative usage overwrote message_start's estimate
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens,
            final.usage.cache_creation_input_tokens) == (50, 95, 1800, 250)


def tool_start(index: int, call_id: str, name: str, arguments: str = "") -> dict[str, Any]:
    return chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                  "function": {"name": name, "arguments": arguments}}]})


def tool_args(index: int, fragment: str) -> dict[str, Any]:
    return chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})


def test_stream_two_parallel_tool_calls() -> None:
    chunks = [chunk({"role": "assistant", "content": None}),
              tool_start(0, "call_a", "get_weather"), tool_args(0, '{"ci'), tool_args(0, 'ty": "Pa'), tool_args(0, 'ris"}'),
              tool_start(1, "call_b", "get_weather"), tool_args(1, '{"city"'), tool_args(1, ': "Rome"}'),
              chunk({}, "tool_calls")]
    data, final = run(chunks)
    evs = events(data)
    starts = [p["content_block"] for n, p in evs if n == "content_block_start"]
    assert starts == [tool_use("call_a", "get_weather", {}), tool_use("call_b", "get_weather", {})]
    fragments = [p["delta"]["partial_json"] for n, p in evs if n == "content_block_delta"]
    assert fragments == ['{"ci', 'ty": "Pa', 'ris"}', '{"city"', ': "Rome"}']  # streamed as they came, in order
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        tool_use("call_a", "get_weather", {"city": "Paris"}), tool_use("call_b", "get_weather", {"city": "Rome"})]
    assert final.stop_reason == "tool_use"


def test_stream_interleaved_tool_fragments_are_serialised() -> None:
    chunks = [tool_start(0, "call_a", "f"), tool_start(1, "call_b", "g"), tool_args(0, '{"x": '), tool_args(1, '{"y": 2}'),
              tool_args(0, "1}"), tool_start(2, "call_c", "h", "{}")]
    data, final = run(chunks, finish="tool_calls")
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        tool_use("call_a", "f", {"x": 1}), tool_use("call_b", "g", {"y": 2}), tool_use("call_c", "h", {})]
    # call_b waited (buffered) until call_a's arguments were complete JSON, then came whole
    deltas = [(p["index"], p["delta"]["partial_json"]) for n, p in events(data) if n == "content_block_delta"]
    assert deltas == [(0, '{"x": '), (0, "1}"), (1, '{"y": 2}'), (2, "{}")]


def test_stream_tool_call_that_never_completes_waits_until_finish() -> None:
    chunks = [tool_start(0, "call_a", "f", '{"x": 1'), tool_start(1, "call_b", "g", '{"y": 2}')]
    data, final = run(chunks, finish="length")
    assert [b.model_dump(exclude_none=True) for b in final.content] == [tool_use("call_a", "f", {"x": 1}),
                                                                        tool_use("call_b", "g", {"y": 2})]
    assert final.stop_reason == "max_tokens"


def test_stream_reasoning_with_signature_then_text() -> None:
    fmt = "anthropic-claude-v1"
    chunks = [chunk({"role": "assistant", "content": ""}),
              chunk({"reasoning_content": "Let me ", "reasoning_details": [{"index": 0, "type": "reasoning.text",
                                                                            "format": fmt, "text": "Let me "}]}),
              chunk({"reasoning_content": "think.", "reasoning_details": [{"index": 0, "type": "reasoning.text",
                                                                           "text": "think."}]}),
              chunk({"reasoning_details": [{"index": 0, "type": "reasoning.text", "signature": SIG}]}),
              chunk({"content": "The answer"}), chunk({"content": " is 42."}), chunk({}, "stop")]
    data, final = run(chunks)
    evs = events(data)
    assert [p["delta"]["type"] for n, p in evs if n == "content_block_delta"] == [
        "thinking_delta", "thinking_delta", "signature_delta", "text_delta", "text_delta"]
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": SIG}, text("The answer is 42.")]
    assert final.usage.output_tokens_details.thinking_tokens == 40


def test_stream_reasoning_without_signature_and_foreign_signature() -> None:
    chunks = [chunk({"reasoning_content": "Hmm."}),
              chunk({"reasoning_details": [{"index": 0, "type": "reasoning.text", "signature": "g-sig",
                                            "format": "google-gemini-v1"}]}),
              chunk({"reasoning": " More."}),  # OpenRouter's field name
              chunk({"content": "ok"})]
    _, final = run(chunks, finish="stop")
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        {"type": "thinking", "thinking": "Hmm. More.", "signature": ""}, text("ok")]


def test_stream_two_reasoning_entries_make_two_blocks_and_redacted() -> None:
    chunks = [chunk({"reasoning_details": [{"index": 0, "type": "reasoning.encrypted", "data": "RED"}]}),
              chunk({"reasoning_details": [{"index": 1, "type": "reasoning.text", "text": "A"}]}),
              chunk({"reasoning_details": [{"index": 1, "type": "reasoning.text", "signature": "S1"}]}),
              tool_start(0, "call_1", "f", "{}"),
              chunk({"reasoning_details": [{"index": 2, "type": "reasoning.text", "text": "B", "signature": "S2"}]}),
              chunk({"content": "done"})]
    _, final = run(chunks, finish="stop")
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        {"type": "redacted_thinking", "data": "RED"}, {"type": "thinking", "thinking": "A", "signature": "S1"},
        tool_use("call_1", "f", {}), {"type": "thinking", "thinking": "B", "signature": "S2"}, text("done")]
    assert final.stop_reason == "tool_use"  # "stop" with tool calls (Gemini) is tool_use


def test_stream_content_and_tool_call_in_one_delta_and_batch() -> None:
    chunks = [chunk({"role": "assistant", "content": "Let me check.",
                     "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                     "function": {"name": "get_weather", "arguments": '{"city":'}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Oslo"}'}}]}, "tool_calls")]
    for split in (True, False):
        _, final = run(chunks, split=split)
        assert [b.model_dump(exclude_none=True) for b in final.content] == [
            text("Let me check."), tool_use("call_1", "get_weather", {"city": "Oslo"})]
        assert final.stop_reason == "tool_use"


def test_stream_finish_reason_from_chunks_and_stop_sequence() -> None:
    writer = AnthropicStreamWriter("m", "msg_1")
    data = writer.chunks([chunk({"content": "x"}), chunk({}, "stop", stop_reason="END")])
    data += writer.finish(Usage(), None)
    evs = check_sequence(data)
    assert evs[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    final = accumulate(data)
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "END"
    assert writer.finish_reason == "stop"


@pytest.mark.parametrize(("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"),
                                              ("tool_calls", "end_turn"), (None, "end_turn")])
def test_stream_stop_reasons(finish: str | None, stop: str) -> None:
    _, final = run([chunk({"content": "x"})], finish=finish)
    assert final.stop_reason == stop


def test_stream_without_start_and_empty_stream() -> None:
    writer = AnthropicStreamWriter("m", "msg_1")
    data = writer.finish(Usage(prompt_tokens=5), "stop")  # start() never called: still a whole message
    check_sequence(data)
    final = accumulate(data)
    assert final.content == [] and final.usage.input_tokens == 5
    assert writer.finished and writer.finish(Usage(), "stop") == b"" and writer.chunks([chunk({"content": "x"})]) == b""


def test_stream_ignores_other_choices_garbage_and_usage_chunks() -> None:
    chunks = [{"choices": [{"index": 1, "delta": {"content": "other"}}]}, "garbage",  # type: ignore[list-item]
              {"choices": [], "usage": {"prompt_tokens": 1}}, chunk({"content": "mine"}),
              chunk({"tool_calls": ["bad"]})]
    _, final = run(chunks, split=False)  # type: ignore[arg-type]
    assert [b.model_dump(exclude_none=True) for b in final.content] == [text("mine")]


def test_stream_error() -> None:
    writer = AnthropicStreamWriter("m", "msg_1")
    data = writer.start() + writer.chunks([chunk({"content": "partial"})])
    tail = writer.error("overloaded_error", "Overloaded")
    assert tail == b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    assert writer.finish(Usage(), "stop") == b"" and writer.chunks([chunk({"content": "more"})]) == b""
    assert writer.error("api_error", "again") == b""
    assert events(data + tail)[-1][0] == "error"


def test_a_translated_stream_meters_the_text_it_delivers() -> None:
    """The meter, not the writer, keeps the delivered text: thinking, text and tool arguments as they stream."""
    stream = ReadStream(AnthropicAdapter(), "m")
    for event in SSEDecoder().feed((FIXTURES / "thinking_tools.sse").read_bytes()):
        stream.feed(event)
    expected = []
    for event in SSEDecoder().feed((FIXTURES / "thinking_tools.sse").read_bytes()):
        obj = json.loads(event.data)
        part = obj.get("delta") or obj.get("content_block") or {}
        expected += [part[field] for field in ("text", "thinking", "partial_json") if isinstance(part.get(field), str)]
    assert any('"' in piece for piece in expected) and any(piece.strip() and '"' not in piece for piece in expected)
    assert stream.pieces == expected
    assert stream.meter.delivered_tokens() == estimate_tokens("".join(expected)) > 0


def test_stream_tool_ids_sanitized_and_missing_id_generated() -> None:
    chunks = [chunk({"tool_calls": [{"index": 0, "id": "call:1/x", "function": {"name": "f", "arguments": "{}"}}]}),
              chunk({"tool_calls": [{"index": 1, "function": {"name": "g", "arguments": "{}"}}]})]
    _, final = run(chunks, finish="tool_calls")
    assert final.content[0].id == "call_1_x_" + hashlib.sha256(b"call:1/x").hexdigest()[:16]
    assert final.content[1].id.startswith("toolu_") and final.content[1].name == "g"


# --------------------------------------------------------------------------- stream round trip: Anthropic -> OpenAI chunks -> Anthropic


@pytest.mark.parametrize("name", ["text_cache.sse", "tools.sse", "thinking_tools.sse"])
def test_outbound_chunks_rebuild_the_original_message(name: str) -> None:
    """An Anthropic upstream's SSE, read by the outbound adapter into OpenAI chunks and written back by
    this writer, gives the SDK the same Message as the upstream's own bytes."""
    original = (FIXTURES / name).read_bytes()
    decoder = SSEDecoder()
    upstream_events = decoder.feed(original) + decoder.close()
    stream = ReadStream(AnthropicAdapter(), "claude-sonnet-4-6")
    chunks: list[dict[str, Any]] = []
    for event in upstream_events:
        chunks += stream.feed(event)
    assert stream.usage is not None
    writer = AnthropicStreamWriter("claude-sonnet-4-6", "msg_round")
    data = writer.start(stream.usage.prompt_tokens) + writer.chunks(chunks) + writer.finish(stream.usage, stream.finish_reason)
    check_sequence(data)
    rebuilt, expected = accumulate(data), fold([orjson.loads(e.data) for e in upstream_events])
    assert [b.model_dump() for b in rebuilt.content] == [b.model_dump() for b in expected.content]
    assert rebuilt.stop_reason == expected.stop_reason
    for field in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        assert (getattr(rebuilt.usage, field) or 0) == (getattr(expected.usage, field) or 0), field
    assert rebuilt.usage.output_tokens_details == expected.usage.output_tokens_details
