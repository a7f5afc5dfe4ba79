"""Money arithmetic: exact integers, one rounding rule, figures computed by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenhub.billing.cost import max_cost, usage_cost
from tokenhub.catalog.model import Pricing
from tokenhub.money import MoneyError, format_usd, tokens_cost, usd_to_nanos
from tokenhub.tokens import Usage


@pytest.mark.parametrize(
    ("text", "nanos"),
    [("1", 1_000_000_000), ("0.1", 100_000_000), ("2.50", 2_500_000_000), ("0.000000001", 1), ("-3", -3_000_000_000), ("0", 0)],
)
def test_parse(text: str, nanos: int):
    assert usd_to_nanos(text) == nanos


@pytest.mark.parametrize("bad", ["abc", "", "1.0000000001", "NaN", "Infinity", "1e30", "--1"])
def test_parse_rejects(bad: str):
    with pytest.raises(MoneyError):
        usd_to_nanos(bad)


@pytest.mark.parametrize(("nanos", "text"), [(1, "0.000000001"), (1_500_000_000, "1.5"), (0, "0"), (-20, "-0.00000002"), (10**18, "1000000000")])
def test_format(nanos: int, text: str):
    assert format_usd(nanos) == text


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_format_and_parse_round_trip(nanos: int):
    assert usd_to_nanos(format_usd(nanos)) == nanos


def test_hand_computed_costs():
    gpt41 = Pricing(input=usd_to_nanos("2"), cached_input=usd_to_nanos("0.5"), output=usd_to_nanos("8"))
    # 1,234 prompt tokens of which 1,000 cached, 567 completion tokens:
    # 234 * $2/M + 1000 * $0.5/M + 567 * $8/M = $0.000468 + $0.0005 + $0.004536 = $0.005504
    assert usage_cost(Usage(1234, 567, cached_tokens=1000), gpt41) == 5_504_000
    # reasoning tokens are part of completion tokens, billed at the reasoning price when one is set
    o_series = Pricing(input=usd_to_nanos("1.1"), output=usd_to_nanos("4.4"), reasoning=usd_to_nanos("10"))
    # 100 * 1.1 + (50 - 30) * 4.4 + 30 * 10 = 110 + 88 + 300 = 498 $/M tokens -> $0.000498
    assert usage_cost(Usage(100, 50, reasoning_tokens=30), o_series) == 498_000
    # Anthropic-style cache writes at their own price: 10 uncached + 20 write + 70 read
    claude = Pricing(input=usd_to_nanos("3"), output=usd_to_nanos("15"), cached_input=usd_to_nanos("0.3"), cache_write=usd_to_nanos("3.75"))
    assert usage_cost(Usage(100, 0, cached_tokens=70, cache_write_tokens=20), claude) == (10 * 3_000 + 20 * 3_750 + 70 * 300)
    # $0.0375/M is 37.5 nanos per token: one token rounds half up to 38
    assert usage_cost(Usage(1, 0), Pricing(input=usd_to_nanos("0.0375"))) == 38
    # $0.0000375/M is 0.0375 nanos per token: 1 token -> 0; 14 tokens = 0.525 -> 1 (half up, once)
    cheap = Pricing(input=usd_to_nanos("0.0000375"))
    assert usage_cost(Usage(1, 0), cheap) == 0
    assert usage_cost(Usage(14, 0), cheap) == 1
    assert usage_cost(Usage(13, 0), cheap) == 0  # 0.4875


def test_rounding_happens_once_per_request_not_per_token_class():
    p = Pricing(input=usd_to_nanos("0.0003"), output=usd_to_nanos("0.0003"))
    # $0.0003/M: one token is 0.3 nanos; each class alone rounds to 0, together 0.6 nanos -> 1
    assert tokens_cost([(1, p.input)]) == 0
    assert usage_cost(Usage(1, 1), p) == 1


@given(
    prompt=st.integers(0, 10_000_000),
    completion=st.integers(0, 1_000_000),
    cached=st.integers(0, 10_000_000),
    price_in=st.integers(0, 10**12),
    price_out=st.integers(0, 10**12),
)
def test_cost_matches_decimal_arithmetic(prompt, completion, cached, price_in, price_out):
    cached = min(cached, prompt)
    p = Pricing(input=price_in, output=price_out, cached_input=price_in // 4)
    exact = (Decimal(prompt - cached) * price_in + Decimal(cached) * (price_in // 4) + Decimal(completion) * price_out) / 1_000_000
    expected = int(exact.to_integral_value(rounding="ROUND_HALF_UP"))
    assert usage_cost(Usage(prompt, completion, cached_tokens=cached), p) == expected
    assert max_cost(prompt, completion, p) >= usage_cost(Usage(prompt, completion, cached_tokens=cached), p)
