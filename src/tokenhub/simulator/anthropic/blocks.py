"""The plan of a message: its content blocks (with their stream deltas) and its usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenhub.simulator.common.text import malformed_count

FRAGMENT_SIZES = (3, 7, 1, 5, 2, 9, 4)  # partial_json split points cycle through these


@dataclass
class BlockPlan:
    """One output content block and how it streams."""

    kind: str  # "thinking" | "redacted_thinking" | "text" | "tool_use" | "server_tool_use" | "result"
    pieces: list[str] = field(default_factory=list)  # text/thinking deltas or partial_json fragments
    result: dict[str, Any] = field(default_factory=dict)  # a server tool's whole result block (kind "result")
    signature: str = ""
    data: str = ""
    tool_id: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    hidden_tokens: int = 0  # thinking pieces not shown (display: omitted)

    @property
    def tokens(self) -> int:
        if self.kind in ("tool_use", "server_tool_use"):
            return 1 + sum(1 for p in self.pieces if p)
        if self.kind == "redacted_thinking":
            return 1
        if self.kind == "result":
            return 0
        return len(self.pieces) + self.hidden_tokens

    def start(self) -> dict[str, Any]:
        if self.kind == "text":
            return {"type": "text", "text": ""}
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        if self.kind == "redacted_thinking":
            return {"type": "redacted_thinking", "data": self.data}
        if self.kind == "result":
            return self.result
        return {"type": self.kind, "id": self.tool_id, "name": self.name, "input": {}}

    def deltas(self) -> list[dict[str, Any]]:
        if self.kind == "text":
            return [{"type": "text_delta", "text": p} for p in self.pieces]
        if self.kind == "thinking":
            return [{"type": "thinking_delta", "thinking": p} for p in self.pieces] + [
                {"type": "signature_delta", "signature": self.signature}
            ]
        if self.kind in ("tool_use", "server_tool_use"):
            return [{"type": "input_json_delta", "partial_json": p} for p in self.pieces]
        return []

    def final(self) -> dict[str, Any]:
        if self.kind == "text":
            return {"type": "text", "text": "".join(self.pieces)}
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": "".join(self.pieces), "signature": self.signature}
        if self.kind == "redacted_thinking":
            return {"type": "redacted_thinking", "data": self.data}
        if self.kind == "result":
            return self.result
        return {"type": self.kind, "id": self.tool_id, "name": self.name, "input": self.input}


@dataclass
class MessagePlan:
    id: str
    model: str
    blocks: list[BlockPlan]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    cache_read: int
    cache_write: int
    cache_write_1h: bool
    server_tool_use: dict[str, int] | None = None  # {"web_search_requests", "web_fetch_requests"} when server tools were offered
    bad_usage: str | None = None  # #fake:bad_usage=KIND

    @property
    def output_tokens(self) -> int:
        return sum(b.tokens for b in self.blocks)

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": 0 if self.cache_write_1h else self.cache_write,
                "ephemeral_1h_input_tokens": self.cache_write if self.cache_write_1h else 0,
            },
            "output_tokens": malformed_count(self.bad_usage, self.output_tokens),
            "service_tier": "standard",
        }
        if self.server_tool_use is not None:
            usage["server_tool_use"] = dict(self.server_tool_use)
        return usage

    def start_usage(self) -> dict[str, Any]:
        """message_start's usage: output_tokens 1, no server tool run yet."""
        usage = {**self.usage(), "output_tokens": 1}
        if self.server_tool_use is not None:
            usage["server_tool_use"] = {name: 0 for name in self.server_tool_use}
        return usage

    def delta_usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": malformed_count(self.bad_usage, self.output_tokens),
        }
        if self.server_tool_use is not None:
            usage["server_tool_use"] = dict(self.server_tool_use)
        return usage

    def stop_details(self) -> dict[str, Any] | None:
        if self.stop_reason == "refusal":
            return {"type": "refusal", "category": None, "explanation": None}
        return None


def split_json(text: str) -> list[str]:
    """``""`` then fragments of varying size (split mid-token), as Anthropic streams tool input."""
    fragments = [""]
    position, k = 0, 0
    while position < len(text):
        size = FRAGMENT_SIZES[k % len(FRAGMENT_SIZES)]
        fragments.append(text[position : position + size])
        position, k = position + size, k + 1
    return fragments
