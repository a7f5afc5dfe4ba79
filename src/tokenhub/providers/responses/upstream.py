"""OpenAI's Responses API as an UPSTREAM protocol: a canonical chat payload out, Responses answers back.

Used for two things: a chat client on a model the catalog marks ``responses_only`` (served upstream
only through ``/responses``), and — with the client's own body, see ``passthrough.py`` — a Responses
client on an OpenAI channel.

Out (``build_request``): system messages -> ``instructions``; user / assistant messages -> message
items (text, ``input_image``); assistant ``tool_calls`` -> ``function_call`` items; ``tool`` messages
-> ``function_call_output``; function tools, ``tool_choice``, ``response_format`` -> ``text.format``,
``reasoning_effort`` -> ``reasoning.effort``, the held bound -> ``max_output_tokens``; ``store: false``.
Back: output items -> one chat message (reasoning summaries as ``reasoning_content``, text, tool
calls with ``call_id`` as their id); ``completed`` -> stop (tool_calls when there are calls),
``incomplete`` -> length or content_filter; usage in chat's semantics.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import orjson

from tokenhub.errors import InvalidRequest, UpstreamError
from tokenhub.providers.base import (
    AdapterDefaults,
    Completion,
    MalformedChunk,
    Meter,
    UpstreamRequest,
    new_chunk,
    now,
)
from tokenhub.sse import Event
from tokenhub.tokens import Usage, usage_count
from tokenhub.upstream import Channel


class NativeCompletion(dict):  # type: ignore[type-arg]
    """A chat completion that also keeps the upstream's own Responses object (for a pass-through client)."""

    native: dict[str, Any]


def read_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    try:
        details_in = raw.get("input_tokens_details") or {}
        details_out = raw.get("output_tokens_details") or {}
        return Usage(usage_count(raw.get("input_tokens")), usage_count(raw.get("output_tokens")),
                     cached_tokens=usage_count(details_in.get("cached_tokens")),
                     reasoning_tokens=usage_count(details_out.get("reasoning_tokens")))  # fmt: skip
    except Exception:  # noqa: BLE001 - a malformed count: as if absent (the relay estimates)
        return None


def finish_of(response: dict[str, Any], has_calls: bool) -> str:
    if response.get("status") == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if has_calls else "stop"


def to_chat(response: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    texts, thoughts, calls = [], [], []
    for item in response.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            texts += [p.get("text") or "" for p in item.get("content") or () if isinstance(p, dict) and p.get("type") == "output_text"]
        elif kind == "reasoning":
            thoughts += [s.get("text") or "" for s in item.get("summary") or () if isinstance(s, dict)]
        elif kind == "function_call":
            calls.append({"id": item.get("call_id"), "type": "function",
                          "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}})  # fmt: skip
    if texts:
        message["content"] = "".join(texts)
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return {"id": response.get("id"), "object": "chat.completion", "created": response.get("created_at") or now(),
            "model": response.get("model"), "choices": [{"index": 0, "message": message, "finish_reason": finish_of(response, bool(calls))}]}  # fmt: skip


def _input(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    instructions, items = [], []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            instructions.append(content if isinstance(content, str) else "".join(p.get("text") or "" for p in content or ()))
            continue
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"), "output": content if isinstance(content, str) else orjson.dumps(content).decode()})
            continue
        part_type = "output_text" if role == "assistant" else "input_text"
        if isinstance(content, str) and content:
            items.append({"role": role, "content": [{"type": part_type, "text": content}]})
        elif isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") == "text":
                    parts.append({"type": part_type, "text": p.get("text") or ""})
                elif p.get("type") == "image_url":
                    url = p["image_url"]["url"] if isinstance(p.get("image_url"), dict) else p.get("image_url")
                    parts.append({"type": "input_image", "image_url": url})
            items.append({"role": role, "content": parts})
        for call in m.get("tool_calls") or ():
            function = call.get("function") or {}
            items.append({"type": "function_call", "call_id": call.get("id"), "name": function.get("name"), "arguments": function.get("arguments") or "{}"})
    return instructions, items


ROLES = ("system", "developer", "user", "assistant", "tool")
PART_TYPES = ("text", "image_url")


def check_payload(payload: dict[str, Any]) -> None:
    """What the Responses API cannot take from a chat payload, refused in OpenAI's words before the call."""
    for i, m in enumerate(payload.get("messages") or ()):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise InvalidRequest(f"{where}: 'role' must be one of {', '.join(ROLES)}", param=where)
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidRequest(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
                raise InvalidRequest(f"{where}.content: parts are text or image_url here", param=f"{where}.content")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise InvalidRequest(f"{where}.content: a text part needs 'text'", param=f"{where}.content")
            image = part.get("image_url")
            if part["type"] == "image_url" and not (isinstance(image, dict) and isinstance(image.get("url"), str)):
                raise InvalidRequest(f"{where}.content: image_url must be an object with a url", param=f"{where}.content")
            if part["type"] == "image_url" and image["url"].startswith("data:") and not _data_url_ok(image["url"]):
                raise InvalidRequest(f"{where}.content: the image's data URL is not valid base64", param=f"{where}.content")
        calls = m.get("tool_calls")
        if calls is not None and not (isinstance(calls, list) and all(_call_ok(c) for c in calls)):
            raise InvalidRequest(f"{where}.tool_calls: each needs an 'id' and a function with a name and arguments", param=f"{where}.tool_calls")
        if m["role"] == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise InvalidRequest(f"{where}: a tool message needs 'tool_call_id'", param=f"{where}.tool_call_id")
    tools = payload.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(_tool_ok(t) for t in tools)):
        raise InvalidRequest("'tools' must be function tools with a name and an object of parameters", param="tools")
    choice = payload.get("tool_choice")
    if choice is not None and choice not in ("auto", "none", "required") and not (
        isinstance(choice, dict) and isinstance(choice.get("function"), dict) and isinstance(choice["function"].get("name"), str)
    ):
        raise InvalidRequest("'tool_choice' must be auto, none, required or a named function", param="tool_choice")
    fmt = payload.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") in ("text", "json_object", "json_schema")
                                and (fmt["type"] != "json_schema" or isinstance(fmt.get("json_schema"), dict))):  # fmt: skip
        raise InvalidRequest("'response_format' must be text, json_object or json_schema with a json_schema object", param="response_format")
    if payload.get("stop") is not None:
        raise InvalidRequest("this model is served through OpenAI's Responses API, which has no stop sequences", param="stop")
    for name in ("temperature", "top_p"):
        value = payload.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidRequest(f"'{name}' must be a number", param=name)
    effort = payload.get("reasoning_effort")
    if effort is not None and not isinstance(effort, str):
        raise InvalidRequest("'reasoning_effort' must be a string", param="reasoning_effort")
    options = payload.get("stream_options")
    if isinstance(options, dict) and not isinstance(options.get("include_usage", False), bool):
        raise InvalidRequest("'stream_options.include_usage' must be true or false", param="stream_options")


def _call_ok(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (isinstance(call, dict) and isinstance(call.get("id"), str) and isinstance(function, dict)
            and isinstance(function.get("name"), str) and isinstance(function.get("arguments", ""), str))  # fmt: skip


def _tool_ok(tool: Any) -> bool:
    function = tool.get("function") if isinstance(tool, dict) else None
    return (isinstance(function, dict) and isinstance(function.get("name"), str)
            and isinstance(function.get("parameters", {}), dict))  # fmt: skip


def _data_url_ok(url: str) -> bool:
    _, _, data = url.partition(",")
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        return False
    return bool(data)


def build_body(payload: dict[str, Any], upstream_model: str, *, stream: bool, max_output: int | None) -> dict[str, Any]:
    check_payload(payload)
    instructions, items = _input(payload.get("messages") or [])
    body: dict[str, Any] = {"model": upstream_model, "input": items, "stream": stream, "store": False}
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    if max_output is not None:
        body["max_output_tokens"] = max_output
    for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if payload.get(name) is not None:
            body[name] = payload[name]
    if payload.get("reasoning_effort") is not None:
        body["reasoning"] = {"effort": payload["reasoning_effort"], "summary": "auto"}
    tools = [t["function"] for t in payload.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    if tools:
        body["tools"] = [{"type": "function", "name": f.get("name"), "description": f.get("description"),
                          "parameters": f.get("parameters") or {"type": "object", "properties": {}}, "strict": f.get("strict", False)} for f in tools]  # fmt: skip
    choice = payload.get("tool_choice")
    if choice in ("auto", "none", "required"):
        body["tool_choice"] = choice
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        body["tool_choice"] = {"type": "function", "name": choice["function"].get("name")}
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema") or {}
        body["text"] = {"format": {"type": "json_schema", "name": schema.get("name") or "response", "schema": schema.get("schema") or {},
                                   "strict": bool(schema.get("strict"))}}  # fmt: skip
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        body["text"] = {"format": {"type": "json_object"}}
    return body


def upstream_request(body: dict[str, Any], channel: Channel, *, stream: bool, max_output: int | None) -> UpstreamRequest:
    return UpstreamRequest(
        url=f"{channel.base_url}/responses",
        headers={"Authorization": f"Bearer {channel.api_key}", "Content-Type": "application/json",
                 "Accept": "text/event-stream" if stream else "application/json"},  # fmt: skip
        body=orjson.dumps(body),
        max_output=max_output,
    )


class ResponsesStreamReader:
    """Responses events: the meter told (text, usage, finish, errors), and OpenAI chat chunks for translating pipes."""

    def __init__(self, client_model: str, meter: Meter) -> None:
        self._model = client_model
        self._meter = meter
        self._id = "chatcmpl-" + secrets.token_hex(12)
        self._created = now()
        self._calls: dict[str, int] = {}  # function_call item id -> chat tool-call index
        self._started = False

    def read(self, event: Event) -> dict[str, Any] | None:
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise MalformedChunk("the upstream sent a malformed stream event") from None
        if not isinstance(obj, dict):
            raise MalformedChunk("the upstream sent a malformed stream event")
        meter, kind = self._meter, obj.get("type")
        if kind == "response.created" and isinstance((obj.get("response") or {}).get("id"), str):
            self._id = "chatcmpl-" + obj["response"]["id"]  # the chunks carry the upstream response's id
        if kind in ("response.output_text.delta", "response.reasoning_summary_text.delta", "response.function_call_arguments.delta"):
            if isinstance(obj.get("delta"), str):
                meter.pieces.append(obj["delta"])
        elif kind in ("response.completed", "response.incomplete"):
            response = obj.get("response") or {}
            meter.usage = read_usage(response.get("usage")) or meter.usage
            has_calls = any(isinstance(i, dict) and i.get("type") == "function_call" for i in response.get("output") or ())
            meter.finish_reason, meter.finished = finish_of(response, has_calls), True
        elif kind == "error":
            meter.error = {"message": str(obj.get("message") or "the upstream reported an error"), "code": obj.get("code")}
            return None
        elif kind == "response.failed":
            error = (obj.get("response") or {}).get("error") or {}
            meter.error = {"message": str(error.get("message") or "the upstream response failed"), "code": error.get("code")}
            return None
        return obj

    def chunks(self, obj: dict[str, Any] | None) -> list[dict[str, Any]]:
        if obj is None:
            return []
        kind = obj.get("type")
        delta: dict[str, Any] | None = None
        if kind == "response.output_text.delta":
            delta = {"content": obj.get("delta") or ""}
        elif kind == "response.reasoning_summary_text.delta":
            delta = {"reasoning_content": obj.get("delta") or ""}
        elif kind == "response.output_item.added" and (obj.get("item") or {}).get("type") == "function_call":
            item = obj["item"]
            index = self._calls.setdefault(item.get("id"), len(self._calls))
            delta = {"tool_calls": [{"index": index, "id": item.get("call_id"), "type": "function",
                                     "function": {"name": item.get("name"), "arguments": ""}}]}  # fmt: skip
        elif kind == "response.function_call_arguments.delta" and obj.get("item_id") in self._calls:
            delta = {"tool_calls": [{"index": self._calls[obj["item_id"]], "function": {"arguments": obj.get("delta") or ""}}]}
        elif kind in ("response.completed", "response.incomplete"):
            return [new_chunk(self._id, self._created, self._model, {}, self._meter.finish_reason)]
        if delta is None:
            return []
        if not self._started:  # the first chunk names the role, as OpenAI's do
            self._started = True
            delta = {"role": "assistant", **delta}
        return [new_chunk(self._id, self._created, self._model, delta)]

    def close(self) -> list[dict[str, Any]]:
        return []


class ResponsesAdapter(AdapterDefaults):
    """An OpenAI channel's ``/responses`` endpoint as a ``ChatAdapter``."""

    capabilities = frozenset({"stream", "tools", "vision", "json_schema", "reasoning"})

    def build_request(self, payload: dict[str, Any], upstream_model: str, channel: Channel, *, stream: bool,
                      max_output: int | None = None, **_unused: Any) -> UpstreamRequest:  # fmt: skip
        return upstream_request(build_body(payload, upstream_model, stream=stream, max_output=max_output), channel,
                                stream=stream, max_output=max_output)  # fmt: skip

    def parse_response(self, body: bytes) -> Completion:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict) or obj.get("object") != "response":
            raise UpstreamError("the upstream provider sent a response that is not a Responses object", code="upstream_bad_response")
        completion = NativeCompletion(to_chat(obj))
        completion.native = obj
        return Completion(completion, read_usage(obj.get("usage")))

    def stream_reader(self, client_model: str, meter: Meter) -> ResponsesStreamReader:
        return ResponsesStreamReader(client_model, meter)
