"""The client protocols, declared once: each is a driver that asks through its official SDK and reads the
answer back into one shape, so a conformance case is written once for every client and every upstream.

A driver speaks its protocol's own words on the wire (the SDK's request types, its stop reasons, its
error bodies) and checks what only its protocol promises (OpenAI's ``model``, ``usage.cost`` in every protocol,
Anthropic's ``type: error`` bodies) as it reads the answer back.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.support.harness import Harness

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER = {"name": "get_weather", "description": "Weather by city",
           "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}  # fmt: skip


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]
    id: str


@dataclass
class Answer:
    """An answer in the table's words: finish is stop | length | tool_calls (None for anything else)."""

    text: str
    finish: str | None
    calls: list[Call]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: Decimal | None  # the cost the answer reports, where the protocol carries one
    raw: Any = field(repr=False, default=None)  # the SDK's own object, to continue a conversation


@dataclass
class Ask:
    """A request in the table's words."""

    text: str
    system: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # (user | assistant, text) before it
    image: str | None = None  # base64 PNG alongside the text
    tools: bool = False
    reasoning: bool = False
    schema: dict[str, Any] | None = None
    stop: list[str] | None = None
    stream: bool = False
    max_tokens: int = 500


class OpenAIChat:
    """``/api/v1/chat/completions`` through the openai SDK."""

    name = "openai-chat"
    error = openai.APIStatusError

    def __init__(self, gw: Harness, key: str) -> None:
        self.client = gw.client(key)
        self.model = ""

    def close(self) -> None:
        self.client.close()

    def messages(self, ask: Ask) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": ask.system}] if ask.system else []
        messages += [{"role": role, "content": text} for role, text in ask.history]
        content: Any = ask.text
        if ask.image:
            content = [{"type": "text", "text": ask.text}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{ask.image}"}}]
        return [*messages, {"role": "user", "content": content}]

    def ask(self, ask: Ask, messages: list[dict[str, Any]] | None = None) -> Answer:
        options: dict[str, Any] = {"model": self.model, "messages": messages or self.messages(ask), "max_tokens": ask.max_tokens}
        if ask.tools:
            options["tools"] = [{"type": "function", "function": {"name": WEATHER["name"], "description": WEATHER["description"],
                                                                  "parameters": WEATHER["schema"]}}]  # fmt: skip
        if ask.reasoning:
            options["reasoning_effort"] = "low"
        if ask.schema:
            options["response_format"] = {"type": "json_schema", "json_schema": {"name": "a", "schema": ask.schema}}
        if ask.stop:
            options["stop"] = ask.stop
        if ask.stream:
            last: Any = None
            with self.client.chat.completions.stream(**options, stream_options={"include_usage": True}) as stream:
                for event in stream:
                    if event.type == "chunk":
                        last = event.chunk
                reply = stream.get_final_completion()
            assert last is not None and last.choices == [] and last.usage is not None  # the usage chunk ends the stream
            return self._read(reply, last.usage)
        reply = self.client.chat.completions.create(**options)
        return self._read(reply, reply.usage)

    def _read(self, reply: Any, usage: Any) -> Answer:
        assert reply.model == self.model  # the id the client asked for, whatever the upstream calls it
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        message = reply.choices[0].message
        calls = [Call(c.function.name, json.loads(c.function.arguments), c.id) for c in message.tool_calls or ()]
        details = usage.completion_tokens_details
        cost = (usage.model_extra or {}).get("cost")
        return Answer(message.content or "", reply.choices[0].finish_reason, calls, usage.prompt_tokens, usage.completion_tokens,
                      usage.prompt_tokens_details.cached_tokens or 0, 0, (details.reasoning_tokens if details else 0) or 0,
                      Decimal(str(cost)) if cost is not None else None, raw=reply)  # fmt: skip

    def tool_results(self, ask: Ask, first: Answer, result: str) -> Answer:
        messages = self.messages(ask)
        messages.append(first.raw.choices[0].message.model_dump(exclude_none=True))
        messages += [{"role": "tool", "tool_call_id": call.id, "content": result} for call in first.calls]
        return self.ask(Ask(ask.text, tools=True), messages)

    def check_error(self, err: Exception) -> None:
        assert isinstance(err, openai.APIStatusError)
        assert set(err.body) == {"message", "type", "code", "param"}, err.body  # the SDK hands over the "error" object


class AnthropicMessages:
    """``/api/v1/messages`` through the anthropic SDK."""

    name = "anthropic-messages"
    error = anthropic.APIStatusError
    FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}  # its own words, nothing else

    def __init__(self, gw: Harness, key: str) -> None:
        self.client = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=key, max_retries=0)
        self.model = ""

    def close(self) -> None:
        self.client.close()

    def messages(self, ask: Ask) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": role, "content": text} for role, text in ask.history]
        content: Any = ask.text
        if ask.image:
            content = [{"type": "text", "text": ask.text},
                       {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ask.image}}]  # fmt: skip
        return [*messages, {"role": "user", "content": content}]

    def ask(self, ask: Ask, messages: list[dict[str, Any]] | None = None) -> Answer:
        options: dict[str, Any] = {"model": self.model, "messages": messages or self.messages(ask), "max_tokens": ask.max_tokens}
        if ask.system:
            options["system"] = ask.system
        if ask.tools:
            options["tools"] = [{"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["schema"]}]
        if ask.reasoning:
            options["thinking"] = {"type": "enabled", "budget_tokens": 2000}
        if ask.schema:
            options["extra_body"] = {"output_config": {"format": {"type": "json_schema", "schema": ask.schema}}}
        if ask.stop:
            options["stop_sequences"] = ask.stop
        if ask.stream:
            cost = None
            with self.client.messages.stream(**options) as stream:
                for event in stream:  # the SDK's final message keeps no extra usage field: cost is message_delta's
                    if event.type == "message_delta":
                        cost = (event.usage.model_extra or {}).get("cost")
                message = stream.get_final_message()
            return self._read(message, cost)
        message = self.client.messages.create(**options)
        return self._read(message, (message.usage.model_extra or {}).get("cost"))

    def _read(self, message: Any, cost: Any) -> Answer:
        assert message.type == "message" and message.role == "assistant"
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = [Call(b.name, b.input, b.id) for b in message.content if b.type == "tool_use"]
        u = message.usage
        cached, written = u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0
        details = (u.model_extra or {}).get("output_tokens_details") or {}
        return Answer(text, self.FINISH.get(message.stop_reason), calls, u.input_tokens + cached + written, u.output_tokens,
                      cached, written, details.get("thinking_tokens") or 0, Decimal(str(cost)) if cost is not None else None,
                      raw=message)  # fmt: skip

    def tool_results(self, ask: Ask, first: Answer, result: str) -> Answer:
        messages = self.messages(ask)
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.raw.content]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": c.id, "content": result} for c in first.calls]})
        return self.ask(Ask(ask.text, tools=True), messages)

    def check_error(self, err: Exception) -> None:
        assert isinstance(err, anthropic.APIStatusError)
        assert err.body["type"] == "error" and set(err.body["error"]) >= {"type", "message"}, err.body


class OpenAIResponses:
    """``/api/v1/responses`` through the openai SDK (``responses.create`` / ``responses.stream``)."""

    name = "openai-responses"
    error = openai.APIStatusError
    cannot = frozenset({"stop"})  # the Responses API has no stop sequences

    def __init__(self, gw: Harness, key: str) -> None:
        self.client = gw.client(key)
        self.model = ""

    def close(self) -> None:
        self.client.close()

    def items(self, ask: Ask) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = [{"role": role, "content": text} for role, text in ask.history]
        content: Any = ask.text
        if ask.image:
            content = [{"type": "input_text", "text": ask.text}, {"type": "input_image", "image_url": f"data:image/png;base64,{ask.image}"}]
        return [*items, {"role": "user", "content": content}]

    def ask(self, ask: Ask, items: list[dict[str, Any]] | None = None) -> Answer:
        options: dict[str, Any] = {"model": self.model, "input": items or self.items(ask), "max_output_tokens": ask.max_tokens}
        if ask.system:
            options["instructions"] = ask.system
        if ask.tools:
            options["tools"] = [{"type": "function", "name": WEATHER["name"], "description": WEATHER["description"],
                                 "parameters": WEATHER["schema"]}]  # fmt: skip
        if ask.reasoning:
            options["reasoning"] = {"effort": "low"}
        if ask.schema:
            options["text"] = {"format": {"type": "json_schema", "name": "a", "schema": ask.schema}}
        if ask.stream:
            with self.client.responses.stream(**options) as stream:
                kinds = [event.type for event in stream]
                reply = stream.get_final_response()
            assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete"), kinds
            return self._read(reply)
        return self._read(self.client.responses.create(**options))

    def _read(self, reply: Any) -> Answer:
        assert reply.object == "response" and reply.model == self.model
        usage = reply.usage
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
        calls = [Call(item.name, json.loads(item.arguments), item.call_id) for item in reply.output if item.type == "function_call"]
        if calls:
            finish = "tool_calls"
        elif reply.status == "incomplete":
            finish = "length" if reply.incomplete_details.reason == "max_output_tokens" else None
        else:
            finish = "stop" if reply.status == "completed" else None
        cost = (usage.model_extra or {}).get("cost")
        return Answer(reply.output_text, finish, calls, usage.input_tokens, usage.output_tokens,
                      usage.input_tokens_details.cached_tokens or 0, 0, usage.output_tokens_details.reasoning_tokens or 0,
                      Decimal(str(cost)) if cost is not None else None, raw=reply)  # fmt: skip

    def tool_results(self, ask: Ask, first: Answer, result: str) -> Answer:
        items = self.items(ask)
        items += [item.model_dump(exclude_none=True) for item in first.raw.output]
        items += [{"type": "function_call_output", "call_id": call.id, "output": result} for call in first.calls]
        return self.ask(Ask(ask.text, tools=True), items)

    def check_error(self, err: Exception) -> None:
        assert isinstance(err, openai.APIStatusError)
        assert set(err.body) == {"message", "type", "code", "param"}, err.body


class GeminiNative:
    """Google's API under ``/api`` (``/v1beta/models/{model}:generateContent``) through the google-genai SDK."""

    name = "gemini-native"
    error = genai_errors.APIError
    FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}

    def __init__(self, gw: Harness, key: str) -> None:
        self.client = genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=gw.base_url.removesuffix("/v1")))
        self.model = ""

    def close(self) -> None:
        pass

    def contents(self, ask: Ask) -> list[Any]:
        turns = [genai_types.Content(role="model" if role == "assistant" else "user", parts=[genai_types.Part(text=text)])
                 for role, text in ask.history]  # fmt: skip
        parts = [genai_types.Part(text=ask.text)]
        if ask.image:
            parts.append(genai_types.Part.from_bytes(data=base64.b64decode(ask.image), mime_type="image/png"))
        return [*turns, genai_types.Content(role="user", parts=parts)]

    def ask(self, ask: Ask, contents: list[Any] | None = None) -> Answer:
        config: dict[str, Any] = {"max_output_tokens": ask.max_tokens}
        if ask.system:
            config["system_instruction"] = ask.system
        if ask.tools:
            config["tools"] = [genai_types.Tool(function_declarations=[genai_types.FunctionDeclaration(
                name=WEATHER["name"], description=WEATHER["description"], parameters_json_schema=WEATHER["schema"])])]  # fmt: skip
        if ask.reasoning:
            config["thinking_config"] = genai_types.ThinkingConfig(thinking_budget=1024)
        if ask.schema:
            config.update(response_mime_type="application/json", response_json_schema=ask.schema)
        if ask.stop:
            config["stop_sequences"] = ask.stop
        options = {"model": self.model, "contents": contents or self.contents(ask), "config": genai_types.GenerateContentConfig(**config)}
        if not ask.stream:
            return self._read([self.client.models.generate_content(**options)])
        return self._read(list(self.client.models.generate_content_stream(**options)))

    def _read(self, replies: list[Any]) -> Answer:
        parts = [part for reply in replies for c in reply.candidates or () if c.content for part in c.content.parts or ()]
        text = "".join(p.text for p in parts if p.text and not p.thought)
        calls = [Call(p.function_call.name, dict(p.function_call.args or {}), f"call-{i}") for i, p in enumerate(parts) if p.function_call]
        last = replies[-1]
        reason = last.candidates[0].finish_reason
        finish = "tool_calls" if calls else self.FINISH.get(reason.value if reason else "")
        usage = last.usage_metadata
        thoughts = usage.thoughts_token_count or 0
        return Answer(text, finish, calls, usage.prompt_token_count, (usage.candidates_token_count or 0) + thoughts,
                      usage.cached_content_token_count or 0, 0, thoughts, None,
                      raw=genai_types.Content(role="model", parts=parts))  # fmt: skip

    def tool_results(self, ask: Ask, first: Answer, result: str) -> Answer:
        answers = [genai_types.Part.from_function_response(name=c.name, response=json.loads(result)) for c in first.calls]
        contents = [*self.contents(ask), first.raw, genai_types.Content(role="user", parts=answers)]
        return self.ask(Ask(ask.text, tools=True), contents)

    def check_error(self, err: Exception) -> None:
        assert isinstance(err, genai_errors.APIError)
        assert isinstance(err.code, int) and isinstance(err.status, str) and err.status.isupper(), (err.code, err.status)


CLIENTS = [OpenAIChat, AnthropicMessages, OpenAIResponses, GeminiNative]
