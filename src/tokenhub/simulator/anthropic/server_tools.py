"""The server tools (web search, web fetch) the fake pretends to run, and their result blocks."""

from __future__ import annotations

import base64
import json
from typing import Any

from tokenhub.simulator.anthropic.blocks import BlockPlan, split_json
from tokenhub.simulator.anthropic.scenario import Scenario
from tokenhub.simulator.common.text import random_id

SERVER_TOOL_KINDS = ("web_search", "web_fetch")


def server_tool(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The request's ``web_search_*`` / ``web_fetch_*`` tool definition, if any."""
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and str(tool.get("type", "")).startswith(kind + "_"):
            return tool
    return None


def server_result(kind: str, tool_id: str, k: int, exceeded: bool) -> dict[str, Any]:
    """The result block of the k-th use of a server tool (an error past ``max_uses``)."""
    if kind == "web_search":
        content: Any = (
            {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}
            if exceeded
            else [
                {
                    "type": "web_search_result",
                    "url": f"https://example.com/result-{k + 1}",
                    "title": f"Fake result {k + 1}",
                    "encrypted_content": base64.b64encode(f"fake-result-{k + 1}".encode()).decode(),
                    "page_age": "December 1, 2026",
                }
            ]
        )
    else:
        content = (
            {"type": "web_fetch_tool_result_error", "error_code": "max_uses_exceeded"}
            if exceeded
            else {
                "type": "web_fetch_result",
                "url": f"https://example.com/page-{k + 1}",
                "retrieved_at": "2026-12-01T00:00:00Z",
                "content": {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "Fake page text."},
                    "title": f"Fake page {k + 1}",
                },
            }
        )
    return {"type": f"{kind}_tool_result", "tool_use_id": tool_id, "content": content}


def plan_server_tools(body: dict[str, Any], scenario: Scenario, blocks: list[BlockPlan]) -> dict[str, int] | None:
    """Append the ``#fake:web_search=N`` / ``web_fetch=N`` blocks; the ``server_tool_use`` usage (None: no server tool)."""
    usage: dict[str, int] | None = None
    for kind in SERVER_TOOL_KINDS:
        tool = server_tool(body, kind)
        if tool is None:
            continue
        usage = usage or {f"{k}_requests": 0 for k in SERVER_TOOL_KINDS}
        attempts = getattr(scenario, kind)
        cap = tool.get("max_uses")
        performed = attempts if cap is None else min(attempts, cap)
        usage[f"{kind}_requests"] = performed
        for k in range(attempts):
            tool_input = (
                {"query": f"fake search {k + 1}"} if kind == "web_search" else {"url": f"https://example.com/page-{k + 1}"}
            )
            tool_id = random_id("srvtoolu_01", 22)
            blocks.append(
                BlockPlan("server_tool_use", split_json(json.dumps(tool_input)), tool_id=tool_id, name=kind, input=tool_input)
            )
            blocks.append(BlockPlan("result", result=server_result(kind, tool_id, k, exceeded=k >= performed)))
    return usage
