"""Anthropic server tools in a Messages request: which ones the upstream would run, at what price, capped how.

A *server tool* is one the upstream runs (and bills) itself, unlike a client tool, which the client
runs. In an Anthropic Messages request they are:

* ``tools[]`` entries whose ``type`` is ``web_search_*`` (kind ``web_search``), ``web_fetch_*``
  (``web_fetch``), ``code_execution_*`` (``code_execution``), ``tool_search_tool_*``
  (``tool_search``), ``mcp_toolset`` (``mcp``), or any other type this module does not know (its
  kind is the type itself: an unknown tool may cost money, so it needs a price like any other);
* the top-level ``mcp_servers`` (the MCP connector, kind ``mcp``) and ``container`` (a code
  execution container, kind ``code_execution``).

Not server tools: custom tools (no ``type``, or ``custom``) and Anthropic's client-executed tools
``bash_*``, ``text_editor_*``, ``computer_*``, ``memory_*``. Code execution is free (tokens only)
when the request also has ``web_search_20260209`` or ``web_fetch_20260209`` (Anthropic's rule for
dynamic filtering), so it is not counted then.

:func:`plan_server_tools` checks every server tool against the model's ``Pricing.server_tools``
(nanos per use by kind): a kind without a price is refused with a 400 naming the tool; a priced
tool must be boundable. ``web_search`` and ``web_fetch`` take ``max_uses``: when a tool with a
price above zero has none, the forwarded body gets ``max_uses`` = :data:`DEFAULT_MAX_USES`, so the
hold (price × max_uses, see ``billing.cost.tool_hold``) covers exactly what is forwarded. Other
kinds have no use cap on the wire and no use count in Anthropic's usage, so only a price of 0 lets
them through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenhub.catalog.model import Pricing
from tokenhub.errors import InvalidRequest

DEFAULT_MAX_USES = 5  # forwarded as max_uses when a priced tool comes without one
CAPPED_KINDS = frozenset({"web_search", "web_fetch"})  # tools that take max_uses and whose uses usage reports
TOOL_KINDS = (
    ("web_search_", "web_search"),
    ("web_fetch_", "web_fetch"),
    ("code_execution_", "code_execution"),
    ("tool_search_tool_", "tool_search"),
    ("mcp_toolset", "mcp"),
)
CLIENT_TOOL_PREFIXES = ("bash_", "text_editor_", "computer_", "memory_")
FREE_CODE_EXECUTION_WITH = frozenset({"web_search_20260209", "web_fetch_20260209"})


@dataclass(frozen=True)
class ServerTool:
    kind: str  # the price key
    label: str  # what the client wrote: the tool's type, or the top-level field's name
    param: str  # where it is: tools[2], mcp_servers, container
    index: int | None = None  # its position in tools[], for setting max_uses
    max_uses: int | None = None


@dataclass
class ServerToolPlan:
    body: dict[str, Any]  # the request to forward (max_uses added where the gateway chose the cap)
    uses: dict[str, int] = field(default_factory=dict)  # kind -> the most uses the forwarded request allows


def server_tool_kind(tool_type: str) -> str | None:
    """The price key of a tool ``type``; None for client tools."""
    if tool_type == "custom" or tool_type.startswith(CLIENT_TOOL_PREFIXES):
        return None
    for prefix, kind in TOOL_KINDS:
        if tool_type.startswith(prefix):
            return kind
    return tool_type


def anthropic_server_tools(body: dict[str, Any]) -> list[ServerTool]:
    """Every server tool the request asks for (see the module notes)."""
    found: list[ServerTool] = []
    tools = body.get("tools")
    types = {t.get("type") for t in tools if isinstance(t, dict)} if isinstance(tools, list) else set()
    free_code = bool(types & FREE_CODE_EXECUTION_WITH)
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        kind_name = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind_name, str) or not kind_name:
            continue
        kind = server_tool_kind(kind_name)
        if kind is None or (kind == "code_execution" and free_code):
            continue
        max_uses = tool.get("max_uses")
        if max_uses is not None and (not isinstance(max_uses, int) or isinstance(max_uses, bool) or max_uses < 1):
            raise InvalidRequest(f"tools.{i}.max_uses: must be a positive integer", param=f"tools[{i}].max_uses")
        found.append(ServerTool(kind, kind_name, f"tools[{i}]", i, max_uses))
    if body.get("mcp_servers"):
        found.append(ServerTool("mcp", "mcp_servers", "mcp_servers"))
    if body.get("container") is not None and not free_code:
        found.append(ServerTool("code_execution", "container", "container"))
    return found


def plan_server_tools(body: dict[str, Any], pricing: Pricing, model_id: str) -> ServerToolPlan:
    """The body to forward and the uses to hold for, or ``InvalidRequest`` naming an unpriced tool."""
    tools = anthropic_server_tools(body)
    if not tools:
        return ServerToolPlan(body)
    uses: dict[str, int] = {}
    capped: dict[int, int] = {}
    for tool in tools:
        price = pricing.server_tools.get(tool.kind)
        if price is None:
            raise InvalidRequest(
                f"{tool.param}: the server tool '{tool.label}' is not available for {model_id} on this gateway "
                "(it has no price here, and server tools are never served free)",
                code="server_tool_not_priced",
                param=tool.param,
            )
        if price == 0:
            continue
        if tool.kind not in CAPPED_KINDS:
            raise InvalidRequest(
                f"{tool.param}: the server tool '{tool.label}' cannot be bounded, so it cannot be billed on this gateway",
                code="server_tool_not_priced",
                param=tool.param,
            )
        cap = tool.max_uses
        if cap is None and tool.index is not None:
            cap = capped[tool.index] = DEFAULT_MAX_USES
        uses[tool.kind] = uses.get(tool.kind, 0) + (cap or 0)
    if capped:
        forwarded_tools = list(body["tools"])
        for index, cap in capped.items():
            forwarded_tools[index] = {**forwarded_tools[index], "max_uses": cap}
        body = {**body, "tools": forwarded_tools}
    return ServerToolPlan(body, uses)
