"""Common setup for API tests: a customer with credits, a key, and a channel to the fake upstream."""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.harness import Harness
from tokenhub.catalog import service as catalog_service
from tokenhub.money import usd_to_nanos

# A model whose prices the tests own (USD per 1M tokens), so figures below are hand-computable.
MODEL = "test/priced"
INPUT, CACHED, OUTPUT = "3", "0.3", "15"


@dataclass
class Customer:
    email: str
    key: str


def priced_model(gw: Harness, upstream_url: str, *, model: str = MODEL, channel: bool = True) -> None:
    gw.write(
        lambda c: catalog_service.add_model(
            c,
            model,
            provider="openai-compatible",
            upstream_id="upstream-" + model.split("/", 1)[1],
            input_price=usd_to_nanos(INPUT),
            output_price=usd_to_nanos(OUTPUT),
            cached_input_price=usd_to_nanos(CACHED),
            context_length=128_000,
            max_output_tokens=8_192,
        )
    )
    if channel:
        gw.channel("openai-compatible", upstream_url, models=[model], name="fake-" + model.replace("/", "-"))


def customer(gw: Harness, email: str = "dev@example.com", credits_usd: str = "10", **key_kwargs: object) -> Customer:
    gw.user(email, credits_usd)
    return Customer(email, gw.key(email, **key_kwargs))


def cost_nanos(prompt: int, completion: int, cached: int = 0) -> int:
    """Hand arithmetic for MODEL: $3/M input, $0.30/M cached input, $15/M output, rounded half up."""
    exact = (prompt - cached) * 3_000_000_000 + cached * 300_000_000 + completion * 15_000_000_000
    return (exact + 500_000) // 1_000_000
