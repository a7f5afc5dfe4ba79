"""An Anthropic upstream's stream, one event at a time."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from tokenhub.providers.anthropic.wire import REASONING_FORMAT, finish_reason, read_usage
from tokenhub.providers.base import (
    MalformedChunk,
    Meter,
    new_chunk,
    now,
)
from tokenhub.sse import Event


class AnthropicStreamReader:
    """Anthropic SSE events -> OpenAI ``chat.completion.chunk`` dicts.

    * ``message_start`` -> the role chunk (``{"role": "assistant", "content": ""}``), always first.
    * text -> ``content``; thinking -> ``reasoning_content`` and, for the SDK's accumulator to
      rebuild signed blocks, ``reasoning_details: [{"index": k, "type": "reasoning.text", "text"}]``
      (``format`` once, in the entry's first delta; ``signature`` in its own delta); a
      redacted_thinking block -> one ``reasoning.encrypted`` entry. ``k`` counts reasoning blocks.
    * tool_use -> ``tool_calls`` with a running index from 0: id, name and ``arguments: ""`` first,
      then each non-empty ``partial_json`` in order; a tool whose input never streamed gets ``"{}"``
      at its ``content_block_stop``.
    * ``message_delta`` -> ``{"delta": {}, "finish_reason"}`` (once).

    What the events say goes to the meter as they are read: ``message_start``'s usage merged with
    ``message_delta``'s (cumulative, and it may omit fields the start gave), the stop reason, the
    end (``message_stop``), an ``error`` (after which nothing more is produced), the text of every
    delta, and each server-tool result delivered (a ``*_tool_result`` block that is not an error is
    one billed use, so a stream whose usage never comes is charged its estimate *and* the uses
    delivered, never the searches for free). The meter's usage stays None until ``message_delta``.
    """

    def __init__(self, client_model: str, meter: Meter) -> None:
        self._model = client_model
        self._meter = meter
        self._id = f"chatcmpl-{secrets.token_hex(12)}"
        self._created = now()
        self._started = False
        self._blocks: dict[int, str] = {}  # block index -> kind
        self._tools: dict[int, int] = {}  # block index -> tool call index
        self._args_seen: set[int] = set()
        self._reasoning: dict[int, int] = {}  # block index -> reasoning_details index
        self._reasoning_open: set[int] = set()  # reasoning entries already announced
        self._usage: dict[str, Any] = {}  # message_start's usage, then message_delta's merged in
        self._finish_sent = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return new_chunk(self._id, self._created, self._model, delta, finish)

    def read(self, event: Event) -> dict[str, Any] | None:
        meter = self._meter
        if meter.error is not None:
            return None
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise MalformedChunk("the upstream sent a malformed stream event") from None
        if not isinstance(obj, dict):
            raise MalformedChunk("the upstream sent a malformed stream event")
        kind = obj.get("type")
        if not kind and event.name:  # the type named only by the SSE event line
            kind = obj["type"] = event.name.decode("utf-8", "replace")
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if isinstance(delta, dict):
                for field in ("text", "thinking", "partial_json"):
                    if isinstance(delta.get(field), str):
                        meter.pieces.append(delta[field])
        elif kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict):
                for field in ("text", "thinking"):  # text a block starts with
                    if isinstance(block.get(field), str):
                        meter.pieces.append(block[field])
                self._count_tool_result(block)
        elif kind == "message_start":
            message = obj.get("message")
            self._merge_usage(message.get("usage") if isinstance(message, dict) else None)
        elif kind == "message_delta":
            self._merge_usage(obj.get("usage"))
            meter.usage = read_usage(self._usage)  # None when malformed: the relay estimates
            delta = obj.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop_reason is not None and meter.finish_reason is None:
                meter.finish_reason = finish_reason(stop_reason)
        elif kind == "message_stop":
            meter.finished = True
        elif kind == "error":
            err = obj.get("error")
            err = err if isinstance(err, dict) else {}
            code = str(err.get("type") or "api_error")
            meter.error = {"message": str(err.get("message") or "the upstream reported an error"), "type": code, "code": code}
            return None
        return obj

    def _merge_usage(self, usage: Any) -> None:
        """message_delta's usage is cumulative and may omit fields message_start gave."""
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})
        elif usage is not None:
            self._usage["output_tokens"] = usage  # not an object: malformed, so read_usage gives None

    def _count_tool_result(self, block: Any) -> None:
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str) or not kind.endswith("_tool_result") or kind == "mcp_tool_result":
            return
        content = block.get("content")
        if isinstance(content, dict) and "error_code" in content:  # e.g. max_uses_exceeded: not billed
            return
        self._meter.tool_use(kind.removesuffix("_tool_result"))

    def chunks(self, parsed: dict[str, Any] | None) -> list[dict[str, Any]]:
        if parsed is None:
            return []
        kind = parsed.get("type")
        out: list[dict[str, Any]] = []
        if kind != "message_start" and kind != "ping" and not self._started:
            out.append(self._start())
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            out += handler(parsed)
        return out

    def close(self) -> list[dict[str, Any]]:
        return []

    def _start(self) -> dict[str, Any]:
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def _on_message_start(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        message = obj.get("message")
        message = message if isinstance(message, dict) else {}
        if isinstance(message.get("id"), str) and not self._started:
            self._id = f"chatcmpl-{message['id']}"
        return [] if self._started else [self._start()]

    def _on_content_block_start(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        index = obj.get("index")
        block = obj.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            raise MalformedChunk("the upstream sent a malformed content_block_start")
        kind = str(block.get("type"))
        self._blocks[index] = kind
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            return [self._chunk({"content": block["text"]})]
        if kind == "tool_use":
            tool_index = len(self._tools)
            self._tools[index] = tool_index
            call = {
                "index": tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking":
            self._reasoning[index] = len(self._reasoning)
            text = block.get("thinking")
            if isinstance(text, str) and text:
                return [self._chunk({"reasoning_content": text, "reasoning_details": [self._reasoning_entry(index, text=text)]})]
        if kind == "redacted_thinking":
            self._reasoning[index] = len(self._reasoning)
            entry = self._reasoning_entry(index, kind="reasoning.encrypted", data=block.get("data"))
            return [self._chunk({"reasoning_details": [entry]})]
        return []

    def _reasoning_entry(self, block_index: int, kind: str = "reasoning.text", **fields: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"index": self._reasoning[block_index], "type": kind}
        if block_index not in self._reasoning_open:  # `format` only once: the SDK concatenates strings
            self._reasoning_open.add(block_index)
            entry["format"] = REASONING_FORMAT
            if kind == "reasoning.text":
                fields.setdefault("text", "")
        entry.update(fields)
        return entry

    def _on_content_block_delta(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        index = obj.get("index")
        delta = obj.get("delta")
        if not isinstance(index, int) or not isinstance(delta, dict):
            raise MalformedChunk("the upstream sent a malformed content_block_delta")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if kind == "input_json_delta":
            fragment = delta.get("partial_json")
            if index not in self._tools or not isinstance(fragment, str) or not fragment:
                return []
            self._args_seen.add(index)
            return [self._chunk({"tool_calls": [{"index": self._tools[index], "function": {"arguments": fragment}}]})]
        if kind in ("thinking_delta", "signature_delta") and index not in self._reasoning:
            self._reasoning[index] = len(self._reasoning)
        if kind == "thinking_delta":
            text = delta.get("thinking")
            if not isinstance(text, str) or not text:
                return []
            return [self._chunk({"reasoning_content": text, "reasoning_details": [self._reasoning_entry(index, text=text)]})]
        if kind == "signature_delta":
            signature = delta.get("signature")
            if not isinstance(signature, str) or not signature:
                return []
            return [self._chunk({"reasoning_details": [self._reasoning_entry(index, signature=signature)]})]
        return []  # citations_delta and future delta types

    def _on_content_block_stop(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        index = obj.get("index")
        if index in self._tools and index not in self._args_seen:
            self._args_seen.add(index)
            return [self._chunk({"tool_calls": [{"index": self._tools[index], "function": {"arguments": "{}"}}]})]
        return []

    def _on_message_delta(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        reason = self._meter.finish_reason
        if reason is None or self._finish_sent:
            return []
        self._finish_sent = True
        return [self._chunk({}, reason)]
