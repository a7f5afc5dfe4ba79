"""What a message will say: its content blocks and usage, decided before anything is written."""

from __future__ import annotations

import json
from typing import Any

from tokenhub.simulator.anthropic.blocks import BlockPlan, MessagePlan, split_json
from tokenhub.simulator.anthropic.prompt import count_input_tokens, has_1h_cache, thinking_enabled
from tokenhub.simulator.anthropic.scenario import Scenario
from tokenhub.simulator.anthropic.server_tools import plan_server_tools
from tokenhub.simulator.anthropic.signatures import redacted_data, sign_thinking
from tokenhub.simulator.anthropic.state import FakeAnthropicState
from tokenhub.simulator.common.text import REASONING_WORDS, REPLY_WORDS, random_id, word_pieces

DEFAULT_TOOL_NAME = "get_weather"
DEFAULT_NOARG_TOOL_NAME = "get_time"
TOOL_INPUTS: tuple[dict[str, Any], ...] = ({"city": "Paris"}, {"city": "Rome"})
DEFAULT_THINKING_PIECES = len(REASONING_WORDS)


def first_tool_name(body: dict[str, Any], default: str) -> str:
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict) and isinstance(tools[0].get("name"), str):
        return tools[0]["name"]
    return default


def plan_thinking(body: dict[str, Any], scenario: Scenario, state: FakeAnthropicState) -> list[BlockPlan]:
    """The (redacted) thinking blocks that open the message when the request enables thinking."""
    blocks: list[BlockPlan] = []
    if thinking_enabled(body):
        if scenario.redacted_thinking:
            blocks.append(BlockPlan("redacted_thinking", data=redacted_data(state.signing_key)))
        count = DEFAULT_THINKING_PIECES if scenario.thinking is None else scenario.thinking
        if count:
            pieces = word_pieces(REASONING_WORDS, count)
            hidden = (body.get("thinking") or {}).get("display") == "omitted"
            shown = [] if hidden else pieces
            signature = sign_thinking(state.signing_key, "".join(shown))
            state.issued_signatures.add(signature)
            blocks.append(BlockPlan("thinking", shown, signature=signature, hidden_tokens=len(pieces) if hidden else 0))
    return blocks


def plan_tool_uses(body: dict[str, Any], scenario: Scenario) -> list[BlockPlan]:
    """The ``tool_use`` blocks of ``#fake:tools`` (two calls) or ``#fake:tool_noargs`` (one, no input)."""
    if scenario.tools:
        name = first_tool_name(body, DEFAULT_TOOL_NAME)
        return [
            BlockPlan(
                "tool_use",
                split_json(json.dumps(tool_input)),
                tool_id=random_id("toolu_01", 22),
                name=name,
                input=dict(tool_input),
            )
            for tool_input in TOOL_INPUTS
        ]
    if scenario.tool_noargs:
        return [
            BlockPlan(
                "tool_use", [], tool_id=random_id("toolu_01", 22), name=first_tool_name(body, DEFAULT_NOARG_TOOL_NAME), input={}
            )
        ]
    return []


def cut_to_budget(blocks: list[BlockPlan], budget: int, state: FakeAnthropicState) -> list[BlockPlan]:
    """The blocks that fit in ``budget`` output tokens, the last thinking/text block cut short (and re-signed)."""
    remaining, kept = budget, []
    for block in blocks:
        if remaining <= 0:
            break
        if block.kind in ("thinking", "text") and block.tokens > remaining:
            block.pieces = block.pieces[:remaining]
            if block.kind == "thinking":
                block.signature = sign_thinking(state.signing_key, "".join(block.pieces))
                state.issued_signatures.add(block.signature)
        remaining -= block.tokens
        kept.append(block)
    return kept


def directed_stop(body: dict[str, Any], scenario: Scenario, stop_reason: str) -> tuple[str, str | None]:
    """``stop_reason`` and ``stop_sequence`` as the stop directives (``max_tokens``, ``stop_sequence`` ...) set them."""
    stop_sequence: str | None = None
    if scenario.max_tokens:
        stop_reason = "max_tokens"
    elif scenario.stop_sequence:
        stop_reason = "stop_sequence"
        stops = body.get("stop_sequences")
        stop_sequence = stops[0] if isinstance(stops, list) and stops and isinstance(stops[0], str) else None
    elif scenario.refusal:
        stop_reason = "refusal"
    elif scenario.pause_turn:
        stop_reason = "pause_turn"
    return stop_reason, stop_sequence


def plan_message(body: dict[str, Any], scenario: Scenario, state: FakeAnthropicState) -> MessagePlan:
    blocks = plan_thinking(body, scenario, state)
    server_tool_use = plan_server_tools(body, scenario, blocks)
    tool_calls = scenario.tools or scenario.tool_noargs
    if not tool_calls or scenario.tokens is not None:
        count = len(REPLY_WORDS) if scenario.tokens is None else scenario.tokens
        if count:
            blocks.append(BlockPlan("text", word_pieces(REPLY_WORDS, count)))
    blocks += plan_tool_uses(body, scenario)

    stop_reason = "tool_use" if tool_calls else "end_turn"
    budget = body["max_tokens"]
    if not tool_calls and sum(b.tokens for b in blocks) > budget:
        blocks, stop_reason = cut_to_budget(blocks, budget, state), "max_tokens"
    stop_reason, stop_sequence = directed_stop(body, scenario, stop_reason)

    total = count_input_tokens(body)
    cache_read = min(scenario.cache_read, total)
    cache_write = min(scenario.cache_write, total - cache_read)
    return MessagePlan(
        id=random_id("msg_01", 22),
        model=scenario.echo_model or body["model"],
        blocks=blocks,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        input_tokens=total - cache_read - cache_write,
        cache_read=cache_read,
        cache_write=cache_write,
        cache_write_1h=has_1h_cache(body),
        server_tool_use=server_tool_use,
        bad_usage=scenario.bad_usage,
    )
