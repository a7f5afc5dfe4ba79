"""What a request costs: from its usage and its model's prices, and at most (for the hold).

Server tools (Anthropic's web search, ...) are priced per use (``Pricing.server_tools``, nanos per
use by tool kind): a request costs its tokens plus each reported use at its tool's price, and holds
its tokens' bound plus each requested tool's price × its ``max_uses`` (:func:`tool_hold`).
"""

from __future__ import annotations

from typing import Mapping

from tokenhub.catalog.model import Pricing
from tokenhub.errors import InvalidRequest
from tokenhub.money import tokens_cost
from tokenhub.tokens import Usage


def usage_cost(usage: Usage, pricing: Pricing) -> int:
    """Nanos for what the upstream reports, each token class at its own price, rounded once, plus
    each server-tool use at its tool's price (a whole number of nanos per use)."""
    return _tokens_cost(usage, pricing) + sum(
        max(count, 0) * pricing.server_tools.get(kind, 0) for kind, count in usage.tool_uses.items()
    )


def tool_hold(tools: Mapping[str, int], pricing: Pricing) -> int:
    """The most the requested server tools can cost: each tool's price per use × its use cap.

    ``tools`` maps a tool kind to the uses the forwarded request allows (its ``max_uses``). A kind
    the model has no price for is refused (400 naming it), never served free.
    """
    total = 0
    for kind, uses in tools.items():
        price = pricing.server_tools.get(kind)
        if price is None:
            raise InvalidRequest(
                f"the server tool '{kind}' has no price for this model on this gateway, so it cannot be used", param="tools"
            )
        total += price * max(uses, 0)
    return total


def _tokens_cost(usage: Usage, pricing: Pricing) -> int:
    cached = min(max(usage.cached_tokens, 0), max(usage.prompt_tokens, 0))
    cache_write = min(max(usage.cache_write_tokens, 0), max(usage.prompt_tokens, 0) - cached)
    uncached = max(usage.prompt_tokens, 0) - cached - cache_write
    reasoning = min(max(usage.reasoning_tokens, 0), max(usage.completion_tokens, 0))
    visible_output = max(usage.completion_tokens, 0) - reasoning
    return tokens_cost(
        [
            (uncached, pricing.input),
            (cached, pricing.input if pricing.cached_input is None else pricing.cached_input),
            (cache_write, pricing.input if pricing.cache_write is None else pricing.cache_write),
            (visible_output, pricing.output),
            (reasoning, pricing.output if pricing.reasoning is None else pricing.reasoning),
        ]
    )


def max_cost(prompt_tokens: int, output_tokens: int, pricing: Pricing) -> int:
    """The most a request can cost: every prompt token at the dearest input price and every
    possible output token at the dearest output price."""
    input_price = max(pricing.input, pricing.cached_input or 0, pricing.cache_write or 0)
    output_price = max(pricing.output, pricing.reasoning or 0)
    return tokens_cost([(prompt_tokens, input_price), (output_tokens, output_price)])
