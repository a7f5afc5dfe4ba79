"""Money: exact integers only.

The unit is the **nano-dollar** (1 USD = 10^9 nanos) in a signed 64-bit integer: enough for
about 9.2 billion dollars, and fine enough that a $0.01-per-million-token price is still an
integer number of nanos per *million* tokens. Token prices are kept as nanos per 1M tokens
(``$2.50 / 1M`` -> ``2_500_000_000``); image and video prices as nanos per image / per second.

One rounding rule, in one function (``tokens_cost``): the exact cost of a request is summed over
all its token classes first and rounded **once**, half up, to a whole nano. A float never
touches a price or a balance: amounts enter as decimal strings and leave as decimal strings.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Iterable

import orjson

NANOS_PER_USD = 1_000_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000
MAX_NANOS = 2**63 - 1


class MoneyError(ValueError):
    """An amount that is not a well-formed, representable USD figure."""


def usd_to_nanos(value: str | int | Decimal) -> int:
    """Parse a USD amount given as text (``"12.5"``) into nanos; more than 9 decimals is refused."""
    if isinstance(value, float):  # pragma: no cover - guarded by type, kept as a tripwire
        raise MoneyError("amounts must not be floats")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise MoneyError(f"not a USD amount: {value!r}") from None
    if not amount.is_finite():
        raise MoneyError(f"not a USD amount: {value!r}")
    nanos = amount * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise MoneyError(f"{value} has more than 9 decimal places")
    result = int(nanos)
    if abs(result) > MAX_NANOS:
        raise MoneyError(f"{value} is too large")
    return result


def nanos_to_decimal(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS_PER_USD


def format_usd(nanos: int) -> str:
    """Exact decimal text of an amount, without exponent or trailing zeros (``"0.00012"``).

    Integer arithmetic (every response carries a cost: this is on the request path)."""
    whole, frac = divmod(-nanos if nanos < 0 else nanos, NANOS_PER_USD)
    text = f"{whole}.{frac:09d}".rstrip("0") if frac else str(whole)
    return "-" + text if nanos < 0 else text


def usd_number(nanos: int) -> orjson.Fragment:
    """An exact USD amount as a JSON number (no float round trip)."""
    return orjson.Fragment(format_usd(nanos).encode())


def tokens_cost(parts: Iterable[tuple[int, int]]) -> int:
    """Cost in nanos of ``(tokens, nanos per 1M tokens)`` pairs, rounded once, half up."""
    exact = 0
    for tokens, price in parts:  # (a loop: a generator's frame cost more than the sum, twice a request)
        exact += tokens * price
    return (exact + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT


def per_unit_to_per_token(price_per_million: int) -> str:
    """USD per single token as exact decimal text (OpenRouter's ``pricing`` convention)."""
    return format_usd_exact(Decimal(price_per_million) / (NANOS_PER_USD * TOKENS_PER_PRICE_UNIT))


def format_usd_exact(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
