"""The upstream chat protocols, declared once: how to reach each fake, and how each spells a scenario.

A conformance case asks for a scenario ("two parallel tool calls", "cut at max tokens") in the
words of the upstream it runs against; everything else — the client, the assertions — is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from tokenhub.providers.registry import CHAT_ADAPTERS, RESPONSES

ADAPTERS = {**CHAT_ADAPTERS, "responses": RESPONSES}  # "responses": an OpenAI channel's /responses (Responses-only models)


@dataclass(frozen=True)
class ProviderCase:
    name: str
    provider: str  # channel provider
    model: str  # catalog id
    url_fixture: str  # the conftest fixture giving the fake's base URL
    state_fixture: str
    directives: dict[str, str] = field(default_factory=dict)
    # where each feature lands in the upstream request: a function of the recorded JSON body
    json_schema_sent: Callable[[dict[str, Any]], Any] = lambda body: None
    stop_sent: Callable[[dict[str, Any]], Any] = lambda body: None
    stop: bool = True  # whether the protocol has stop sequences (the Responses API has none: a 400)

    def requires(self, capability: str) -> None:
        """Skip a case whose upstream adapter does not declare ``capability`` (the adapter's own declaration)."""
        if capability not in ADAPTERS[self.name].capabilities:
            pytest.skip(f"the {self.name} adapter does not declare {capability!r}")

    def say(self, scenario: str) -> str:
        return self.directives.get(scenario, f"#fake:{scenario}")


UPSTREAMS = [
    ProviderCase(
        "openai",
        "deepseek",
        "deepseek/deepseek-v4-pro",
        "upstream_url",
        "fake_openai",
        directives={"reasoning": "#fake:reasoning=5", "cut": "#fake:length", "cached": "#fake:cached=3"},
        json_schema_sent=lambda body: body.get("response_format", {}).get("json_schema", {}).get("schema"),
        stop_sent=lambda body: body.get("stop"),
    ),
    ProviderCase(
        "anthropic",
        "anthropic",
        "anthropic/claude-sonnet-4-6",
        "anthropic_url",
        "fake_anthropic",
        directives={"reasoning": "#fake:thinking=5", "cut": "#fake:max_tokens", "cached": "#fake:cache_read=3"},
        json_schema_sent=lambda body: (body.get("output_config") or {}).get("format", {}).get("schema"),
        stop_sent=lambda body: body.get("stop_sequences"),
    ),
    ProviderCase(
        "gemini",
        "gemini",
        "google/gemini-2.5-pro",
        "gemini_url",
        "fake_gemini",
        directives={"reasoning": "#fake:thinking=5", "cut": "#fake:max_tokens", "cached": "#fake:cached=3"},
        json_schema_sent=lambda body: body.get("generationConfig", {}).get("responseJsonSchema"),
        stop_sent=lambda body: body.get("generationConfig", {}).get("stopSequences"),
    ),
    ProviderCase(
        "responses",
        "openai",
        "openai/gpt-5-pro",  # Responses-only: every client protocol reaches the channel's /responses
        "upstream_url",
        "fake_openai",
        directives={"reasoning": "#fake:reasoning=5", "cut": "#fake:length", "cached": "#fake:cached=3"},
        json_schema_sent=lambda body: ((body.get("text") or {}).get("format") or {}).get("schema"),
        stop=False,
    ),
]
