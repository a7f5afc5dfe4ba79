"""The upstream request for an OpenAI-protocol vendor: the client's chat request, unchanged but for the model
id, the output bound the hold covers, the usage request of a stream, tool-call ids within OpenAI's
40-character limit, and no built-in tool the gateway cannot meter.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from tokenhub.errors import InvalidRequest
from tokenhub.providers.base import (
    UpstreamRequest,
)
from tokenhub.upstream import Channel
from tokenhub.vendors import PROVIDERS

# Built-in tools the upstream runs and bills per call (OpenAI's web search on search models, Qwen's
# enable_search, xAI's live search, OpenRouter's web plugin, GLM's and Kimi's search tools). Chat
# Completions usage does not report how many calls were made, so the gateway cannot charge them:
# they are refused (400 naming the field), never relayed free.
UNMETERED_FIELDS: Final = ("web_search_options", "enable_search", "search_parameters", "plugins")


CLIENT_TOOL_TYPES: Final = frozenset({"function", "custom"})


def refuse_server_tools(payload: dict[str, Any]) -> None:
    """``InvalidRequest`` naming the first built-in (upstream-run, per-call billed) tool the request asks for."""
    for name in UNMETERED_FIELDS:
        value = payload.get(name)
        if value is None or value is False or value == [] or (isinstance(value, dict) and value.get("mode") == "off"):
            continue
        raise InvalidRequest(
            f"'{name}': the upstream's built-in search is billed per call, which this gateway cannot meter, "
            "so it is not available",
            code="server_tool_not_priced",
            param=name,
        )
    tools = payload.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, dict):
            continue  # not a tool at all: the upstream refuses it
        kind = tool.get("type") or ("function" if "function" in tool else next(iter(tool), "function"))
        if kind not in CLIENT_TOOL_TYPES:  # e.g. {"type": "web_search"}, or Gemini's untyped {"google_search": {}}
            raise InvalidRequest(
                f"tools[{i}]: the server tool '{kind}' runs at the upstream and is billed per call, which this gateway "
                "cannot meter, so it is not available",
                code="server_tool_not_priced",
                param=f"tools[{i}]",
            )


OUTPUT_LIMIT_FIELDS: Final = ("max_completion_tokens", "max_tokens")
MAX_TOOL_CALL_ID: Final = 40  # OpenAI refuses longer ids ("string_above_max_length"); Gemini-made ones run to ~100


def short_tool_call_id(value: str) -> str:
    """An id within OpenAI's limit; the same long id always gives the same short one, so an assistant's
    tool call and the tool message answering it still match (the client keeps its own ids)."""
    if len(value) <= MAX_TOOL_CALL_ID:
        return value
    return "call_" + hashlib.sha256(value.encode()).hexdigest()[: MAX_TOOL_CALL_ID - 5]


def _long_ids(messages: Any) -> bool:
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        if len(str(message.get("tool_call_id") or "")) > MAX_TOOL_CALL_ID:
            return True
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and len(str(call.get("id") or "")) > MAX_TOOL_CALL_ID:
                return True
    return False


def with_short_ids(messages: list[Any]) -> list[Any]:
    """``messages`` with every tool-call id over OpenAI's limit shortened (copies only what changes)."""
    out: list[Any] = []
    for message in messages:
        if isinstance(message, dict) and (message.get("tool_calls") or message.get("tool_call_id")):
            message = dict(message)
            if isinstance(message.get("tool_call_id"), str):
                message["tool_call_id"] = short_tool_call_id(message["tool_call_id"])
            if isinstance(message.get("tool_calls"), list):
                message["tool_calls"] = [
                    {**call, "id": short_tool_call_id(call["id"])} if isinstance(call, dict) and isinstance(call.get("id"), str) else call
                    for call in message["tool_calls"]
                ]
        out.append(message)
    return out


def build_request(
    payload: dict[str, Any], upstream_model: str, channel: Channel, *, stream: bool, max_output: int | None = None
) -> UpstreamRequest:
    """The client's request, unchanged but for the model id, the output bound (``max_output`` in the
    client's own field, or in the vendor's when the client gave none) and, when streaming, a usage request."""
    refuse_server_tools(payload)
    body = dict(payload)
    body["model"] = upstream_model
    if _long_ids(body.get("messages")):  # a thread that began on Gemini, moving to an OpenAI-protocol model
        body["messages"] = with_short_ids(body["messages"])
    if max_output is not None:
        given = [name for name in OUTPUT_LIMIT_FIELDS if body.get(name) is not None]
        vendor = PROVIDERS.get(channel.provider)
        for name in given or (vendor.output_limit_field if vendor else "max_tokens",):
            body[name] = max_output
    if stream:
        options = body.get("stream_options")
        body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    return UpstreamRequest(
        url=f"{channel.base_url}/chat/completions",
        headers={
            "Authorization": f"Bearer {channel.api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        },
        body=orjson.dumps(body),
        max_output=max_output,
    )
