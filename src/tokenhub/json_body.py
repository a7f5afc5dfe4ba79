"""Parsing a client's JSON: the one reader every surface uses, with the one depth limit.

orjson reads up to 1024 levels but writes only 254, so a body nested 255..1024 levels deep would
parse and then fail when the gateway forwards it. Every client body is therefore held to
``MAX_JSON_DEPTH`` levels (arrays and objects), well below what orjson writes, which leaves room for
the few levels a translation to another protocol adds around the client's fields.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

import orjson

from tokenhub.errors import InvalidRequest

MAX_JSON_DEPTH: Final = 128


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH, depth: int = 1) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep (recursion stops at ``limit``)."""
    if type(value) is not dict and type(value) is not list:
        return False
    for child in value.values() if type(value) is dict else value:
        kind = type(child)
        if (kind is dict or kind is list) and (depth >= limit or too_deep(child, limit, depth + 1)):
            return True
    return False


def _depth_exceeded(what: str) -> InvalidRequest:
    return InvalidRequest(
        f"{what} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep (the limit)", code="json_too_deep"
    )


def parse_json(raw: bytes | str, *, what: str = "the request body", exact_decimals: bool = False) -> Any:
    """``raw`` parsed; a 400 for anything that is not JSON or nests deeper than ``MAX_JSON_DEPTH``.

    ``exact_decimals`` reads numbers with fractions as ``Decimal`` (amounts of money), never as floats.
    """
    try:
        if exact_decimals:  # the stdlib parser: it reads Decimals (and, like before, NaN, for a field check to refuse)
            value = json.loads(raw, parse_float=Decimal)
        else:
            value = orjson.loads(raw)
    except RecursionError:
        raise _depth_exceeded(what) from None
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg or "recursion" in exc.msg:
            raise _depth_exceeded(what) from None
        raise InvalidRequest(f"{what} is not valid JSON: {exc.msg}") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(f"{what} is not valid JSON") from None
    # Cheap first: fewer brackets than the limit cannot nest deeper than it (brackets inside strings only add).
    brackets = raw.count(b"[") + raw.count(b"{") if isinstance(raw, bytes) else raw.count("[") + raw.count("{")
    if brackets > MAX_JSON_DEPTH and too_deep(value):
        raise _depth_exceeded(what)
    return value
