"""A Responses request as the gateway's canonical OpenAI chat payload.

Input items (OpenAI's ``ResponseInputItem`` shapes):

* a string ``input`` -> one user message; ``instructions`` -> a system message first;
* ``message`` items (``role`` user | assistant | system | developer; ``content`` a string or parts:
  ``input_text`` / ``output_text`` -> text, ``input_image`` -> an ``image_url`` part, ``refusal``);
* ``function_call`` -> an assistant ``tool_calls`` entry (consecutive calls share one assistant
  message, which also keeps the text before them); ``function_call_output`` -> a ``tool`` message;
* ``reasoning`` items are kept in the stored conversation but not sent to a translated upstream
  (their ``encrypted_content`` is only meaningful to OpenAI).

Options: ``tools`` (``function`` tools, and the functions of a ``namespace``; a built-in tool such as
``web_search`` runs and bills at OpenAI, so it is not offered to a translated upstream), ``tool_choice``, ``text.format`` -> ``response_format``, ``reasoning.effort`` ->
``reasoning_effort``, ``max_output_tokens``, ``temperature``, ``top_p``, ``parallel_tool_calls``,
``user`` / ``safety_identifier``; ``stream``. ``store``, ``previous_response_id`` and ``metadata`` are
the gateway's; the rest of ``IGNORED`` is accepted and not forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenhub.errors import InvalidRequest

SAMPLING = ("temperature", "top_p", "parallel_tool_calls")
# Accepted and not forwarded to a translated upstream (store, previous_response_id and metadata are the
# gateway's own; client_metadata is what Codex CLI sends).
IGNORED = frozenset({"include", "truncation", "service_tier", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
                     "background", "background_options", "store", "previous_response_id", "metadata", "stream_options",
                     "top_logprobs", "client_metadata", "context_management", "max_tool_calls", "moderation"})  # fmt: skip
KNOWN = frozenset({"model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens", "stream",
                   "user", "safety_identifier", *SAMPLING, *IGNORED})  # fmt: skip


@dataclass
class ResponsesRequest:
    """The parts of a Responses request the route needs besides the chat payload."""

    model: str
    items: list[dict[str, Any]]  # this request's input items, normalised (stored for input_items)
    store: bool
    previous_response_id: str | None
    stream: bool
    metadata: dict[str, Any] | None
    echo: dict[str, Any]  # request fields the response object repeats


def read_request(body: Any) -> ResponsesRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise InvalidRequest(f"Unknown parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' is required: a model id such as openai/gpt-4.1", param="model")
    items = input_items(body.get("input"))
    store = body.get("store", True)
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous.strip()):
        raise InvalidRequest("'previous_response_id' must be a response id", param="previous_response_id")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be an object", param="metadata")
    stream = body.get("stream") or False
    if not isinstance(stream, bool) or not isinstance(store, bool):
        raise InvalidRequest("'stream' and 'store' must be true or false", param="stream" if not isinstance(stream, bool) else "store")
    echo = {name: body.get(name) for name in ("instructions", "max_output_tokens", "temperature", "top_p", "user")}
    echo.update(tools=body.get("tools") or [], tool_choice=body.get("tool_choice") or "auto",
                parallel_tool_calls=body.get("parallel_tool_calls", True), text=body.get("text") or {"format": {"type": "text"}},
                reasoning=body.get("reasoning"))  # fmt: skip
    return ResponsesRequest(model.strip(), items, store, previous, stream, metadata, echo)


def input_items(value: Any) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string becomes one user message)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list):
        raise InvalidRequest("'input' must be a string or a list of input items", param="input")
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"input[{i}] must be an object", param=f"input[{i}]")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind not in ("message", "function_call", "function_call_output", "reasoning"):
            raise InvalidRequest(f"input[{i}]: items of type '{kind}' are not supported here", param=f"input[{i}].type")
        item = {**item, "type": kind}
        if kind == "message" and isinstance(item.get("content"), str):  # stored (and listed) as OpenAI lists it
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        items.append(item)
    return items


def chat_payload(body: dict[str, Any], request: ResponsesRequest, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat payload for ``history`` (earlier items, from ``previous_response_id``) and this request's items."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("'instructions' must be a string", param="instructions")
        messages.append({"role": "system", "content": instructions})
    for where, item in enumerate([*history, *request.items]):
        _add_item(messages, item, where)
    if not any(m["role"] != "system" for m in messages):
        raise InvalidRequest("'input' is required: a string or a list of input items", param="input")
    payload: dict[str, Any] = {"model": request.model, "messages": messages, "stream": request.stream}
    _options(body, payload)
    return payload


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], where: int) -> None:
    kind = item["type"]
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidRequest(f"input[{where}]: 'role' must be user, assistant, system or developer", param="input")
        messages.append({"role": "system" if role == "developer" else role, "content": _content(item.get("content"), where)})
    elif kind == "function_call":
        call = {"id": str(item.get("call_id") or ""), "type": "function",
                "function": {"name": str(item.get("name") or ""), "arguments": str(item.get("arguments") or "{}")}}  # fmt: skip
        if not call["id"] or not call["function"]["name"]:
            raise InvalidRequest(f"input[{where}]: a function_call needs 'call_id' and 'name'", param="input")
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else _text_of(output)
        messages.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""), "content": text})


def _content(content: Any, where: int) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"input[{where}]: 'content' must be a string or a list of parts", param="input")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            parts.append({"type": "text", "text": str(part.get("text") or part.get("refusal") or "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest(f"input[{where}]: content parts of type '{kind}' are not supported here", param="input")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _text_of(output: Any) -> str:
    if isinstance(output, list):
        return "".join(str(p.get("text") or "") for p in output if isinstance(p, dict))
    return "" if output is None else str(output)


def _options(body: dict[str, Any], payload: dict[str, Any]) -> None:
    for name in SAMPLING:
        if body.get(name) is not None:
            payload[name] = body[name]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str):
        payload["user"] = user
    if body.get("max_output_tokens") is not None:
        payload["max_completion_tokens"] = body["max_output_tokens"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        payload["reasoning_effort"] = reasoning["effort"]
    tools = body.get("tools")
    if tools:
        functions = [f for i, t in enumerate(tools if isinstance(tools, list) else [tools]) for f in _tools(t, i)]
        if functions:
            payload["tools"] = functions
    choice = body.get("tool_choice")
    if choice is not None:
        payload["tool_choice"] = _tool_choice(choice)
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        payload["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        payload["response_format"] = {"type": "json_object"}


def _tools(tool: Any, i: int) -> list[dict[str, Any]]:
    """The chat function tools of one Responses tool: a function, a namespace's functions, or none for a
    built-in tool (``web_search``, ``file_search``, ...: it runs and bills at OpenAI, which a translated
    upstream cannot do, so the model is not offered it — agents such as Codex always list web_search)."""
    if not isinstance(tool, dict):
        raise InvalidRequest(f"tools[{i}] must be an object", param=f"tools[{i}]")
    if tool.get("type") == "function":
        return [_tool(tool, i)]
    if tool.get("type") == "namespace":
        return [_tool(inner, i) for inner in tool.get("tools") or () if isinstance(inner, dict) and inner.get("type") == "function"]
    return []


def _tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise InvalidRequest(f"tools[{i}]: a function tool needs a 'name'", param=f"tools[{i}].name")
    function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("'tool_choice' must be auto, none, required or {\"type\": \"function\", \"name\": ...}", param="tool_choice")
