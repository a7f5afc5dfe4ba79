"""What a response will say (the plan) and the ``GenerateContentResponse`` objects built from it."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any

from tokenhub.simulator.common.text import REASONING_WORDS, REPLY_WORDS, malformed_count, word_pieces
from tokenhub.simulator.gemini.contents import count_prompt_tokens, declared_function_name, get, is_gemini_3, thinking_config
from tokenhub.simulator.gemini.scenario import Scenario
from tokenhub.simulator.gemini.state import FakeGeminiState

TOOL_ARGS = ({"city": "Paris"}, {"city": "Rome"})
FUNCTION_CALL_FINISH_MESSAGE = "Model generated function call(s)."
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
)
_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


@dataclass
class Plan:
    model: str
    response_id: str
    prompt_tokens: int
    cached: int
    thoughts: list[str]
    show_thoughts: bool
    text: list[str]
    calls: list[dict[str, Any]]  # whole functionCall parts (signature on the first)
    finish_reason: str
    finish_message: str | None = None
    safety_ratings: list[dict[str, Any]] | None = None
    blocked_prompt: bool = False
    signature: str | None = None  # gemini-3 text-reply signature
    drop_content_at_end: bool = False  # SAFETY / RECITATION / MALFORMED: final candidate has no content
    bad_usage: str | None = None  # #fake:bad_usage=KIND


def random_response_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(23))


def safety_ratings(blocked_category: str | None) -> list[dict[str, Any]]:
    ratings = []
    for category in SAFETY_CATEGORIES:
        rating: dict[str, Any] = {"category": category, "probability": "NEGLIGIBLE"}
        if category == blocked_category:
            rating = {"category": category, "probability": "HIGH", "blocked": True}
        ratings.append(rating)
    return ratings


def plan_response(body: dict[str, Any], model: str, scenario: Scenario, state: FakeGeminiState) -> Plan:
    prompt = count_prompt_tokens(body)
    config = thinking_config(body)
    plan = Plan(
        model=model,
        response_id=random_response_id(),
        prompt_tokens=prompt,
        cached=min(scenario.cached, prompt),
        thoughts=word_pieces(REASONING_WORDS, scenario.thinking),
        show_thoughts=get(config, "includeThoughts") is True,
        text=[],
        calls=[],
        finish_reason="STOP",
        bad_usage=scenario.bad_usage,
    )
    if scenario.blocked_prompt:
        plan.thoughts = []
        plan.blocked_prompt = True
        plan.safety_ratings = safety_ratings("HARM_CATEGORY_DANGEROUS_CONTENT")
        return plan
    if scenario.safety:
        plan.finish_reason, plan.drop_content_at_end = "SAFETY", True
        plan.safety_ratings = safety_ratings("HARM_CATEGORY_DANGEROUS_CONTENT")
        return plan
    if scenario.malformed_call:
        name = declared_function_name(body)
        plan.finish_reason, plan.drop_content_at_end = "MALFORMED_FUNCTION_CALL", True
        plan.finish_message = f'Malformed function call: print(default_api.{name}(city=["Par'
        return plan
    if scenario.tools:
        name = declared_function_name(body)
        plan.calls = [{"functionCall": {"name": name, "args": dict(args)}} for args in TOOL_ARGS]
        plan.calls[0]["thoughtSignature"] = state.new_signature()
        plan.finish_message = FUNCTION_CALL_FINISH_MESSAGE
        return plan
    plan.text = word_pieces(REPLY_WORDS, len(REPLY_WORDS) if scenario.tokens is None else scenario.tokens)
    budget = get(get(body, "generationConfig", {}), "maxOutputTokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and len(plan.thoughts) + len(plan.text) > budget:
        plan.thoughts = plan.thoughts[:budget]
        plan.text = plan.text[: budget - len(plan.thoughts)]
        plan.finish_reason = "MAX_TOKENS"
    if scenario.max_tokens:
        plan.finish_reason = "MAX_TOKENS"
    if scenario.recitation:
        plan.text = plan.text[: len(plan.text) // 2]
        plan.finish_reason, plan.drop_content_at_end = "RECITATION", True
    if is_gemini_3(model) and not plan.drop_content_at_end:
        plan.signature = state.new_signature()
    return plan


def usage_metadata(plan: Plan, candidates: int, thoughts: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": plan.prompt_tokens}
    if candidates or plan.bad_usage:
        usage["candidatesTokenCount"] = malformed_count(plan.bad_usage, candidates)
    usage["totalTokenCount"] = plan.prompt_tokens + candidates + thoughts
    if plan.cached:
        usage["cachedContentTokenCount"] = plan.cached
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}]
    if plan.cached:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cached}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def final_usage(plan: Plan) -> dict[str, Any]:
    return usage_metadata(plan, len(plan.text) + len(plan.calls), len(plan.thoughts))


def envelope(plan: Plan, candidate: dict[str, Any] | None, usage: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if candidate is not None:
        body["candidates"] = [candidate]
    else:
        body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": plan.safety_ratings}
    body["usageMetadata"] = usage
    body["modelVersion"] = plan.model
    body["responseId"] = plan.response_id
    return body


def make_candidate(parts: list[dict[str, Any]] | None, plan: Plan | None) -> dict[str, Any]:
    """A candidate; ``plan`` given → this is the final one and carries the finish fields."""
    candidate: dict[str, Any] = {}
    if parts is not None:
        candidate["content"] = {"parts": parts, "role": "model"}
    if plan is not None:
        candidate["finishReason"] = plan.finish_reason
    candidate["index"] = 0
    if plan is not None and plan.finish_message:
        candidate["finishMessage"] = plan.finish_message
    if plan is not None and plan.safety_ratings:
        candidate["safetyRatings"] = plan.safety_ratings
    return candidate


def render_response(plan: Plan) -> dict[str, Any]:
    """The non-stream GenerateContentResponse."""
    if plan.blocked_prompt:
        return envelope(plan, None, usage_metadata(plan, 0, 0))
    parts: list[dict[str, Any]] = []
    if plan.show_thoughts and plan.thoughts:
        parts.append({"text": "".join(plan.thoughts), "thought": True})
    if plan.calls:
        parts += plan.calls
    elif plan.text or not plan.drop_content_at_end:
        text_part: dict[str, Any] = {"text": "".join(plan.text)}
        if plan.signature:
            text_part["thoughtSignature"] = plan.signature
        parts.append(text_part)
    return envelope(plan, make_candidate(parts or None, plan), final_usage(plan))
