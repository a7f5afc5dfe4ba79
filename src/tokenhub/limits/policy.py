"""What a limit is: the fields, their validation, and the calendar periods spend limits count over."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from tokenhub.errors import InvalidRequest
from tokenhub.money import MoneyError, usd_to_nanos

RATE_FIELDS = ("rpm", "tpm", "concurrency")
SPEND_FIELDS = ("daily_limit_nanos", "weekly_limit_nanos", "monthly_limit_nanos", "limit_nanos")
PERIODS = {"daily_limit_nanos": "day", "weekly_limit_nanos": "week", "monthly_limit_nanos": "month", "limit_nanos": "total"}
MAX_RATE = 10_000_000


@dataclass(frozen=True)
class Limits:
    """One scope's limits (a key, or an account); ``None`` means no limit."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    daily_limit_nanos: int | None = None
    weekly_limit_nanos: int | None = None
    monthly_limit_nanos: int | None = None
    limit_nanos: int | None = None  # in total

    @classmethod
    def of(cls, row: Any) -> "Limits":
        return cls(**{f.name: getattr(row, f.name, None) for f in fields(cls)})

    @property
    def has_rates(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None

    def spend_limits(self, *, include_total: bool = True) -> list[tuple[str, int]]:
        """(period, limit) for each spend limit set: period is day | week | month | total."""
        out = []
        for name in SPEND_FIELDS:
            value = getattr(self, name)
            if value is not None and (include_total or name != "limit_nanos"):
                out.append((PERIODS[name], value))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}



def first_day(period: str, day: date) -> date | None:
    """The first day of the UTC calendar period containing ``day`` (ISO weeks start on Monday); None for total."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return None  # total


def spend_kept_from(today: date) -> date:
    """The first day whose spend_by_period rows are kept: the previous month's first. Every period a limit or
    `tokenhub ledger check` reads (this day, week or month) starts after it, and a settlement arriving late
    moves its request's day within it: older days are never read again and may be pruned."""
    last_month = today.replace(day=1) - timedelta(days=1)
    return last_month.replace(day=1)


def period_start(period: str, now: datetime) -> datetime | None:
    """The start of the UTC calendar period containing ``now`` (a UTC time)."""
    first = first_day(period, date(now.year, now.month, now.day))
    return None if first is None else datetime(first.year, first.month, first.day, tzinfo=timezone.utc)


def period_end(period: str, now: datetime) -> datetime | None:
    start = period_start(period, now)
    if start is None:
        return None
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def parse_changes(values: Mapping[str, Any]) -> dict[str, int | None]:
    """Validate limit changes from any front end.

    Rates are whole numbers >= 1 (``rpm``, ``tpm``, ``concurrency``); spend limits are USD amounts
    (``daily_limit``, ``weekly_limit``, ``monthly_limit``, ``limit``; nanos fields are accepted as-is).
    ``None``, ``""``, ``"none"``, ``"off"`` or ``"unlimited"`` clears a limit. Only the names given change.
    """
    changes: dict[str, int | None] = {}
    for name in RATE_FIELDS:
        if name in values:
            changes[name] = _rate(name, values[name])
    for nanos_name in SPEND_FIELDS:
        usd_name = nanos_name.removesuffix("_nanos")
        if usd_name in values:
            changes[nanos_name] = _usd(usd_name, values[usd_name])
        elif nanos_name in values:
            changes[nanos_name] = _nanos(usd_name, values[nanos_name])
    return changes


def cleared(value: Any) -> bool:
    """Whether a field's value means "none": null, empty, or the words none / off / unlimited."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off", "unlimited"))


def _rate(name: str, value: Any) -> int | None:
    if cleared(value):
        return None
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        number = -1
    if not 1 <= number <= MAX_RATE:
        raise InvalidRequest(f"{name} must be a whole number from 1 to {MAX_RATE}, or 'none'", param=name)
    return number


def _usd(name: str, value: Any) -> int | None:
    if cleared(value):
        return None
    try:
        nanos = usd_to_nanos(str(value).strip().lstrip("$").strip())
    except MoneyError:
        raise InvalidRequest(f"{name} must be a USD amount like 5 or 12.50, or 'none'", param=name) from None
    return _nanos(name, nanos)


def _nanos(name: str, value: Any) -> int | None:
    if cleared(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequest(f"{name} must be a non-negative amount", param=name)
    return value
