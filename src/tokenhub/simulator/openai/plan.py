"""What a completion will say: choices, tool calls and usage, decided before anything is written."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tokenhub.simulator.common.text import REASONING_WORDS, REPLY_WORDS, malformed_count, random_id, word_pieces
from tokenhub.simulator.openai.request import count_prompt_tokens
from tokenhub.simulator.openai.scenario import Scenario

DEFAULT_TOOL_NAME = "get_weather"
TOOL_ARGUMENTS = ('{"city":"Paris"}', '{"city":"Rome"}')
ARGUMENT_FRAGMENT_SIZE = 6


@dataclass
class ToolCallPlan:
    index: int
    id: str
    name: str
    arguments: str
    fragments: list[str]  # empty: the whole arguments travel in the header delta

    @property
    def tokens(self) -> int:
        return 1 + len(self.fragments)


@dataclass
class ChoicePlan:
    index: int
    reasoning: list[str]
    content: list[str]
    tool_calls: list[ToolCallPlan]
    finish_reason: str

    @property
    def tokens(self) -> int:
        return len(self.reasoning) + len(self.content) + sum(c.tokens for c in self.tool_calls)

    @property
    def text(self) -> str | None:
        if self.tool_calls and not self.content:
            return None
        return "".join(self.content)


@dataclass
class CompletionPlan:
    id: str
    created: int
    model: str
    choices: list[ChoicePlan]
    usage: dict[str, Any]


def split_fragments(text: str, size: int = ARGUMENT_FRAGMENT_SIZE) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def tool_name(body: dict[str, Any]) -> str:
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        function = tools[0].get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return function["name"]
    return DEFAULT_TOOL_NAME


def plan_tool_calls(body: dict[str, Any], scenario: Scenario) -> list[ToolCallPlan]:
    name = tool_name(body)
    if scenario.tools:
        return [
            ToolCallPlan(i, random_id("call_", 24), name, args, split_fragments(args)) for i, args in enumerate(TOOL_ARGUMENTS)
        ]
    if scenario.tool_whole:
        return [ToolCallPlan(0, random_id("call_", 24), name, TOOL_ARGUMENTS[0], [])]
    return []


def truncate_tool_calls(calls: list[ToolCallPlan], budget: int) -> list[ToolCallPlan]:
    """The calls that fit in ``budget`` pieces, the last one cut mid-arguments (as a real model stops)."""
    kept: list[ToolCallPlan] = []
    for call in calls:
        if budget < 1:
            break
        if call.fragments:
            fragments = call.fragments[: budget - 1]
            call = ToolCallPlan(call.index, call.id, call.name, "".join(fragments), fragments)
        kept.append(call)
        budget -= call.tokens
    return kept


def token_budget(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def plan_choice(index: int, body: dict[str, Any], scenario: Scenario) -> ChoicePlan:
    tool_calls = plan_tool_calls(body, scenario)
    reasoning = word_pieces(REASONING_WORDS, scenario.reasoning)
    if tool_calls:
        content: list[str] = []
    else:
        content = word_pieces(REPLY_WORDS, len(REPLY_WORDS) if scenario.tokens is None else scenario.tokens)
    finish = "tool_calls" if tool_calls else "stop"
    budget = token_budget(body)
    if budget is not None and len(reasoning) + len(content) + sum(c.tokens for c in tool_calls) > budget:
        reasoning = reasoning[:budget]
        content = content[: budget - len(reasoning)]
        tool_calls = truncate_tool_calls(tool_calls, budget - len(reasoning) - len(content))
        finish = "length"
    if scenario.length:
        finish = "length"
    return ChoicePlan(index, reasoning, content, tool_calls, finish)


def build_usage(prompt_tokens: int, choices: list[ChoicePlan], scenario: Scenario) -> dict[str, Any]:
    prompt_tokens += scenario.overreport
    completion = sum(c.tokens for c in choices) + scenario.overreport
    reasoning = sum(len(c.reasoning) for c in choices)
    cached = min(scenario.cached, prompt_tokens)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    if scenario.deepseek_usage:
        usage["prompt_cache_hit_tokens"] = cached
        usage["prompt_cache_miss_tokens"] = prompt_tokens - cached
    usage["completion_tokens"] = malformed_count(scenario.bad_usage, completion)
    return usage


def plan_completion(body: dict[str, Any], scenario: Scenario) -> CompletionPlan:
    choices = [plan_choice(i, body, scenario) for i in range(body.get("n") or 1)]
    return CompletionPlan(
        id=random_id("chatcmpl-", 29),
        created=int(time.time()),
        model=scenario.echo_model or body["model"],
        choices=choices,
        usage=build_usage(count_prompt_tokens(body["messages"]), choices, scenario),
    )
