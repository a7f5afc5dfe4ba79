"""The fake's ``POST /v1/responses``: OpenAI's Responses API, as its docs and openai-python's types describe it.

The answer is planned like a chat answer (``plan.py``: ``#fake:`` directives in the last user text, a
tool loop's next step answering in text), then written as Responses output items: a ``reasoning``
item (its ``encrypted_content`` only when ``include`` asks for ``reasoning.encrypted_content``), a
``message`` with ``output_text``, a ``function_call`` per call. Streaming sends the documented event
sequence with ``event:`` lines and ``sequence_number``, ending with ``response.completed`` (or
``response.incomplete``) carrying the usage. Unknown parameters are refused as OpenAI refuses them
(``Unknown parameter: 'x'.``); ``store`` and ``previous_response_id`` are accepted (nothing is kept:
the gateway sends ``store: false`` and whole conversations).
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.openai.errors import FakeAPIError, status_error
from tokenhub.simulator.openai.plan import ChoicePlan, plan_completion
from tokenhub.simulator.openai.request import check_auth, read_body
from tokenhub.simulator.openai.scenario import Scenario
from tokenhub.simulator.openai.state import STATE_KEY

PARAMETERS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens", "stream", "store",
    "previous_response_id", "metadata", "include", "parallel_tool_calls", "temperature", "top_p", "truncation", "user",
    "safety_identifier", "service_tier", "prompt_cache_key", "prompt_cache_retention", "background", "stream_options",
    "top_logprobs", "client_metadata", "context_management", "max_tool_calls", "conversation", "prompt",
})  # fmt: skip


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The input as chat-like messages, for the planner (directives, prompt size, the tool loop)."""
    items = body["input"]
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages = []
    for item in items:
        kind = item.get("type") or "message"
        if kind == "message":
            content = item.get("content")
            text = content if isinstance(content, str) else " ".join(str(p.get("text") or "") for p in content or () if isinstance(p, dict))
            messages.append({"role": item.get("role") or "user", "content": text})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": item.get("call_id"), "type": "function", "function": {"name": item.get("name"), "arguments": item.get("arguments")}}]})  # fmt: skip
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": str(item.get("output") or "")})
    return messages


def _validate(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FakeAPIError(400, "Invalid type for request body: expected an object.")
    for name in body:
        if name not in PARAMETERS:
            raise FakeAPIError(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise FakeAPIError(400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    items = body.get("input")
    if not (isinstance(items, str) or (isinstance(items, list) and all(isinstance(i, dict) for i in items))):
        raise FakeAPIError(400, "Invalid type for 'input': expected a string or an array of input items.", param="input",
                           code="invalid_type")  # fmt: skip
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict) or tool.get("type") not in ("function", "web_search", "file_search", "namespace", "custom"):
            raise FakeAPIError(400, "Invalid value for 'tools': unsupported tool type.", param="tools")
    return body


def _items(choice: ChoicePlan, encrypted: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if choice.reasoning:
        item: dict[str, Any] = {"type": "reasoning", "id": _id("rs"), "summary": [{"type": "summary_text", "text": "".join(choice.reasoning)}]}
        if encrypted:
            item["encrypted_content"] = base64.b64encode(secrets.token_bytes(48)).decode()
        items.append(item)
    if choice.content:
        items.append({"type": "message", "id": _id("msg"), "status": "completed", "role": "assistant",
                      "content": [{"type": "output_text", "text": "".join(choice.content), "annotations": [], "logprobs": []}]})  # fmt: skip
    for call in choice.tool_calls:
        items.append({"type": "function_call", "id": _id("fc"), "call_id": "call_" + call.id[-24:], "name": call.name,
                      "arguments": call.arguments, "status": "completed"})  # fmt: skip
    return items


def _usage(chat: dict[str, Any]) -> dict[str, Any]:
    return {
        "input_tokens": chat["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": chat["prompt_tokens_details"]["cached_tokens"]},
        "output_tokens": chat["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": chat["completion_tokens_details"]["reasoning_tokens"]},
        "total_tokens": chat["prompt_tokens"] + chat["completion_tokens"],
    }


def _response(body: dict[str, Any], response_id: str, status: str, output: list[dict[str, Any]], usage: Any, reason: str | None) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "created_at": int(time.time()), "status": status, "error": None,
            "incomplete_details": {"reason": reason} if reason else None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": body["model"], "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None}, "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [], "top_p": body.get("top_p", 1.0),
            "truncation": "disabled", "usage": usage, "user": None, "metadata": body.get("metadata") or {}}  # fmt: skip


async def responses(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        body = _validate(await read_body(request, state))
        check_auth(request, state)
    except FakeAPIError as exc:
        return exc.response()
    messages = _chat_messages(body)
    last = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
    scenario = Scenario.parse("" if messages and messages[-1]["role"] == "tool" else str(last.get("content") or ""))
    if scenario.status is not None:
        return status_error(scenario.status, body["model"], scenario.retry_after).response()
    tools = [{"type": "function", "function": {"name": t.get("name")}} for t in body.get("tools") or () if t.get("type") == "function"]
    chat = {"model": body["model"], "messages": messages, "max_tokens": body.get("max_output_tokens"), "tools": tools}
    plan = plan_completion(chat, scenario)
    choice = plan.choices[0]
    output = _items(choice, "reasoning.encrypted_content" in (body.get("include") or ()))
    reason = "max_output_tokens" if choice.finish_reason == "length" else None
    final = _response(body, _id("resp"), "incomplete" if reason else "completed", output, _usage(plan.usage), reason)
    if not body.get("stream"):
        return web.Response(body=orjson.dumps(final), content_type="application/json")
    return await _stream(request, body, final, choice)


async def _stream(request: web.Request, body: dict[str, Any], final: dict[str, Any], choice: ChoicePlan) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    seq = 0

    async def send(kind: str, **fields: Any) -> None:
        nonlocal seq
        await response.write(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, "sequence_number": seq, **fields}) + b"\n\n")
        seq += 1

    start = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    await send("response.created", response=start)
    await send("response.in_progress", response=start)
    for index, item in enumerate(final["output"]):
        await send("response.output_item.added", output_index=index, item={**item, **({"status": "in_progress"} if "status" in item else {})})
        if item["type"] == "reasoning":
            for piece in choice.reasoning:
                await send("response.reasoning_summary_text.delta", item_id=item["id"], output_index=index, summary_index=0, delta=piece)
            await send("response.reasoning_summary_text.done", item_id=item["id"], output_index=index, summary_index=0,
                       text=item["summary"][0]["text"])  # fmt: skip
        elif item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": []}
            await send("response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part)
            for piece in choice.content:
                await send("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0, delta=piece, logprobs=[])
            text = item["content"][0]["text"]
            await send("response.output_text.done", item_id=item["id"], output_index=index, content_index=0, text=text, logprobs=[])
            await send("response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part={**part, "text": text})
        else:
            await send("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=item["arguments"])
            await send("response.function_call_arguments.done", item_id=item["id"], output_index=index, arguments=item["arguments"])
        await send("response.output_item.done", output_index=index, item=item)
    await send("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)
    await response.write_eof()
    return response
