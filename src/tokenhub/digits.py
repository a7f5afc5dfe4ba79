"""Whole numbers written by someone else (a query string, a path, a header, a webhook), read safely.

``str.isdigit()`` is true for ``"²"`` and other Unicode digits that ``int()`` refuses, and a very
long digit string makes ``int()`` slow: every number the gateway reads from outside goes through
``whole_number``, which answers ``None`` for anything but a short run of ASCII digits.
"""

from __future__ import annotations


def whole_number(text: object, max_digits: int = 18) -> int | None:
    """``text`` as a non-negative integer when it is 1 to ``max_digits`` ASCII digits, else None."""
    if isinstance(text, str) and 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None
