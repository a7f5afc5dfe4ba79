"""Parsing form fields into service arguments; a bad field is an ``InvalidRequest`` naming it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from tokenhub.errors import InvalidRequest
from tokenhub.money import MoneyError, usd_to_nanos


def parse_usd(text: str, param: str) -> int:
    """``"12.5"`` or ``"$12.50"`` -> nanos."""
    try:
        return usd_to_nanos(text.strip().lstrip("$").strip())
    except MoneyError:
        raise InvalidRequest(f"'{text}' is not a USD amount", param=param) from None


def parse_int(text: str, param: str, *, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidRequest(f"{param} must be a whole number between {low} and {high}", param=param)
    return value


def parse_day(text: str, param: str) -> date | None:
    """A ``YYYY-MM-DD`` date from a form or query (``None`` when empty); the last day of year 9999 is refused."""
    if not text:
        return None
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        day = date.max
    if day >= date.max:  # nothing can follow it: "through that day" would overflow
        raise InvalidRequest(f"'{text}' is not a date", param=param)
    return day


def parse_expiry_date(text: str, param: str = "expires_at") -> datetime | None:
    """A date picked in a form: valid through that whole day (UTC), so it expires the midnight after."""
    day = parse_day(text, param)
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)


def last_day(expires_at: datetime | None) -> str | None:
    """The inverse of ``parse_expiry_date``: the last day something works, for display."""
    return (expires_at - timedelta(seconds=1)).date().isoformat() if expires_at else None
