"""OpenAI chat chunks written to a Messages client as Anthropic's SSE event sequence."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

from tokenhub.providers.anthropic.message import anthropic_usage, cost_fragment, foreign, restore, stop_reason
from tokenhub.providers.anthropic.wire import is_int, tool_use_id
from tokenhub.tokens import Usage


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _complete_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


@dataclass
class _ToolCall:
    index: int  # the OpenAI tool-call index
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # every fragment received
    pending: list[str] = field(default_factory=list)  # fragments not yet sent (block not started)
    block: int | None = None  # Anthropic block index once started
    closed: bool = False


class AnthropicStreamWriter:
    """OpenAI ``chat.completion.chunk`` dicts -> Anthropic's SSE event sequence, as bytes.

    ``start`` gives ``message_start`` (empty content, input tokens as known) and a ``ping``;
    ``chunks`` gives ``content_block_start``/``content_block_delta``/``content_block_stop`` events;
    ``finish`` closes what is open, then ``message_delta`` (stop_reason and the full usage, which
    the SDK's accumulator lets overwrite message_start's) and ``message_stop``. ``error`` gives an
    ``error`` event; nothing follows an error or a finish. ``chunks``/``finish`` start the message
    themselves when ``start`` was not called.

    One block is open at a time and block indexes count up from 0; a block of another kind closes
    the open one. Per delta: reasoning first (``reasoning_content``, else ``reasoning``, else the
    text of ``reasoning_details``) -> a thinking block per reasoning-details index, with that
    entry's signature as a ``signature_delta`` before it closes (only for ``anthropic-*`` or
    format-less entries; ``reasoning.encrypted`` -> a whole ``redacted_thinking`` block); then
    ``content`` (or ``refusal``) -> text_delta; then ``tool_calls`` -> one ``tool_use`` block per
    OpenAI tool-call index (id made Anthropic-safe, shortened names restored, ``input: {}``) and
    ``input_json_delta`` fragments in order. A tool call that starts while the open tool block's
    arguments are not yet a complete JSON value waits (its fragments buffered) until they are, or
    until the end: Anthropic's blocks cannot interleave. Late fragments of a block already closed
    by text or reasoning are dropped (counted in ``dropped_fragments``). Role-only and empty deltas
    give nothing; choices other than index 0 are ignored.
    """

    def __init__(self, client_model: str, message_id: str, *, tool_names: Mapping[str, str] | None = None) -> None:
        self.client_model = client_model
        self.message_id = message_id
        self._names = dict(tool_names or {})
        self._started = False
        self._done = False
        self._next = 0
        self._open: tuple[str, Any] | None = None  # ("text", None) | ("thinking", key) | ("tool", openai index)
        self._open_index = -1
        self._calls: dict[int, _ToolCall] = {}
        self._queue: list[int] = []  # tool calls waiting for their block, in arrival order
        self._closed_thinking: set[Any] = set()
        self._tool_use = False
        self._stop_string: Any = None
        self.finish_reason: str | None = None  # the last finish_reason seen in the chunks
        self.dropped_fragments = 0

    # -- public -----------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._done

    def start(self, input_tokens: int = 0) -> bytes:
        if self._started:
            return b""
        self._started = True
        usage = {
            "input_tokens": max(int(input_tokens), 0),
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.client_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return _event("message_start", {"type": "message_start", "message": message}) + _event("ping", {"type": "ping"})

    def chunks(self, chunks: list[dict[str, Any]]) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = [self.start()]
        for chunk in chunks:
            if not isinstance(chunk, dict):
                continue
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    out += self._delta(delta)
                if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
                    self.finish_reason = choice["finish_reason"]
                    if isinstance(choice.get("stop_reason"), str):
                        self._stop_string = choice["stop_reason"]
        return b"".join(out)

    def finish(self, usage: Usage, finish_reason: str | None, cost_text: str | None = None) -> bytes:
        if self._done:
            return b""
        out = [self.start(), *self._flush()]
        self._done = True
        reason = stop_reason(finish_reason or self.finish_reason, tool_use=self._tool_use, stop_string=self._stop_string)
        delta = {"stop_reason": reason, "stop_sequence": self._stop_string if reason == "stop_sequence" else None}
        final_usage = anthropic_usage(usage)
        if cost_text is not None:
            final_usage["cost"] = cost_fragment(cost_text)
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, error_type: str, message: str) -> bytes:
        if self._done:
            return b""
        self._done = True
        return _event("error", {"type": "error", "error": {"type": error_type, "message": message}})

    # -- blocks -----------------------------------------------------------

    def _start_block(self, block: dict[str, Any]) -> tuple[int, bytes]:
        index = self._next
        self._next += 1
        return index, _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        kind, key = self._open
        if kind == "thinking" and key is not None:
            self._closed_thinking.add(key)
        elif kind == "tool":
            self._calls[key].closed = True
        self._open = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self._open_index})]

    def _open_block(self, kind: str, key: Any, block: dict[str, Any]) -> list[bytes]:
        index, data = self._start_block(block)
        self._open = (kind, key)
        self._open_index = index
        return [data]

    def _flush(self) -> list[bytes]:
        """Close the open block and send every tool call still waiting, each as a whole block."""
        out = self._close()
        while self._queue:
            call = self._calls[self._queue.pop(0)]
            if call.name is None:  # never named: nothing an Anthropic client could run
                continue
            out += self._start_tool(call)
            out += self._close()
        return out

    def _leave_tools(self) -> list[bytes]:
        """Before text or reasoning: a tool block or waiting tool calls are finished now."""
        if self._queue or (self._open is not None and self._open[0] == "tool"):
            return self._flush()
        return []

    # -- deltas -----------------------------------------------------------

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        text = delta.get("reasoning_content")
        if not isinstance(text, str) or not text:
            text = delta.get("reasoning") if isinstance(delta.get("reasoning"), str) else ""
        details = [d for d in delta.get("reasoning_details") or () if isinstance(d, dict)]
        if text or details:
            out += self._reasoning(text, details)
        content = delta.get("content")
        if isinstance(content, str) and content:
            out += self._text(content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out += self._text(refusal)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out += self._tool_delta(call)
        return out

    def _text(self, text: str) -> list[bytes]:
        out = self._leave_tools()
        if self._open is None or self._open[0] != "text":
            out += self._close()
            out += self._open_block("text", None, {"type": "text", "text": ""})
        out.append(self._block_delta(self._open_index, {"type": "text_delta", "text": text}))
        return out

    def _thinking_open_for(self, key: Any) -> bool:
        if self._open is None or self._open[0] != "thinking":
            return False
        open_key = self._open[1]
        if open_key is None and key is not None:
            self._open = ("thinking", key)  # the block learns its reasoning index
            return True
        return key is None or open_key == key

    def _ensure_thinking(self, key: Any) -> list[bytes]:
        if self._thinking_open_for(key):
            return []
        out = self._leave_tools() + self._close()
        return out + self._open_block("thinking", key, {"type": "thinking", "thinking": "", "signature": ""})

    def _reasoning(self, text: str, details: list[dict[str, Any]]) -> list[bytes]:
        out: list[bytes] = []
        text_keys = [d.get("index") for d in details if d.get("type") in ("reasoning.text", "reasoning.summary")]
        if text:
            out += self._ensure_thinking(text_keys[0] if text_keys else None)
            out.append(self._block_delta(self._open_index, {"type": "thinking_delta", "thinking": text}))
        for entry in details:
            kind, key = entry.get("type"), entry.get("index")
            if kind in ("reasoning.text", "reasoning.summary"):
                piece = entry.get("text") if kind == "reasoning.text" else entry.get("summary")
                if not text and isinstance(piece, str) and piece:
                    out += self._ensure_thinking(key)
                    out.append(self._block_delta(self._open_index, {"type": "thinking_delta", "thinking": piece}))
                signature = entry.get("signature")
                if isinstance(signature, str) and signature and not foreign(entry):
                    if not self._thinking_open_for(key):
                        if key is not None and key in self._closed_thinking:
                            continue  # its block is closed: nowhere to put it
                        out += self._ensure_thinking(key)
                    out.append(self._block_delta(self._open_index, {"type": "signature_delta", "signature": signature}))
            elif kind == "reasoning.encrypted":
                data = entry.get("data")
                if isinstance(data, str) and data and not foreign(entry):
                    out += self._leave_tools() + self._close()
                    out += self._open_block("redacted_thinking", key, {"type": "redacted_thinking", "data": data})
                    out += self._close()
        return out

    def _tool_delta(self, raw: dict[str, Any]) -> list[bytes]:
        index = raw.get("index")
        if not is_int(index):
            index = max(self._calls, default=-1) + (1 if raw.get("id") or not self._calls else 0)
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = _ToolCall(index)
            self._queue.append(index)
        if isinstance(raw.get("id"), str) and raw["id"] and call.id is None:
            call.id = raw["id"]
        function = raw.get("function") if isinstance(raw.get("function"), dict) else {}
        if isinstance(function.get("name"), str) and function["name"] and call.name is None:
            call.name = function["name"]
        out: list[bytes] = []
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            call.arguments += fragment
            if call.closed:
                self.dropped_fragments += 1
            elif call.block is not None:
                out.append(self._block_delta(call.block, {"type": "input_json_delta", "partial_json": fragment}))
            else:
                call.pending.append(fragment)
        return out + self._advance()

    def _advance(self) -> list[bytes]:
        """Start waiting tool calls whose turn has come."""
        out: list[bytes] = []
        while self._queue:
            head = self._calls[self._queue[0]]
            if head.name is None:
                break
            if self._open is not None and self._open[0] == "tool" and not _complete_json(self._calls[self._open[1]].arguments):
                break  # the open call may still receive fragments
            self._queue.pop(0)
            out += self._close()
            out += self._start_tool(head)
        return out

    def _start_tool(self, call: _ToolCall) -> list[bytes]:
        name = restore(call.name, self._names)
        call_id = tool_use_id(call.id) if call.id else f"toolu_{secrets.token_hex(12)}"
        out = self._open_block("tool", call.index, {"type": "tool_use", "id": call_id, "name": name, "input": {}})
        call.block = self._open_index
        self._tool_use = True
        if call.pending:
            fragment = "".join(call.pending)
            call.pending.clear()
            out.append(self._block_delta(call.block, {"type": "input_json_delta", "partial_json": fragment}))
        return out
