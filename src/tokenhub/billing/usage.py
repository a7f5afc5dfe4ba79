"""A customer's usage: requests and video tasks, filtered and paged, and totals per day, model and key.

Functions take an open connection and a ``user_id``; every query is scoped to that user, so no filter
can reach another customer's rows. Pages are keyset-paginated, newest first, on ``(created_at, id)``:
a cursor is the id of the last row shown, looked up among the user's own rows.

Keep connections short: on SQLite every transaction takes the write lock (``BEGIN IMMEDIATE``), so a
caller streaming many rows (the CSV export) fetches one page per connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Date, and_, cast, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from tokenhub.errors import InvalidRequest
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import as_utc
from tokenhub.storage.tables import requests, tasks

# How requests end (``requests.status``; video tasks settle with their own end state), and "pending":
# a request still holding credit. These are the usage page's status filter.
REQUEST_STATUSES = (
    "ok", "client_closed", "upstream_error", "truncated", "interrupted", "failed", "cancelled", "expired", "error",
)
STATUSES = ("pending", *REQUEST_STATUSES)
# The same filter applied to video tasks (a chat-only status matches no task).
TASK_STATUSES_OF = {
    "ok": ("succeeded",), "pending": ("queued", "running"), "failed": ("failed",), "cancelled": ("cancelled",),
    "expired": ("expired",), "error": ("failed",),
}
MAX_PAGE = 1000
ROW_ID = re.compile(r"^[a-z]{3}-[0-9A-Za-z_-]{1,36}$")  # gen-... (requests), tsk-... (tasks)


@dataclass(frozen=True)
class UsageFilter:
    """What the usage page and its CSV export show. ``since`` is inclusive, ``until`` exclusive (UTC)."""

    key_id: int | None = None
    model: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def days(self, first: date | None, last: date | None) -> "UsageFilter":
        """The same filter over whole UTC days, ``first`` through ``last``."""
        return UsageFilter(
            self.key_id, self.model, self.status,
            day_start(first) if first else None,
            day_start(last + timedelta(days=1)) if last else None,
        )


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


# -- requests ------------------------------------------------------------------------------------


async def list_requests(
    conn: AsyncConnection, user_id: int, flt: UsageFilter, *, limit: int = 50, before: str | None = None
) -> list[dict[str, Any]]:
    """The user's requests matching ``flt``, newest first: ``limit`` (1..1000) of them, older than ``before``."""
    r = requests.c
    query = select(requests).where(r.user_id == user_id, *_request_conditions(flt))
    if before is not None:
        query = query.where(await _older_than(conn, requests, user_id, before))
    query = query.order_by(r.created_at.desc(), r.id.desc()).limit(_page_size(limit))
    return [request_dict(row) for row in await conn.execute(query)]


def _request_conditions(flt: UsageFilter) -> list[ColumnElement[bool]]:
    r = requests.c
    conditions = _common_conditions(requests, flt)
    if flt.status == "pending":
        conditions.append(r.state == "held")
    elif flt.status is not None:
        conditions.append(and_(r.state != "held", r.status == flt.status))
    return conditions


async def request_record(conn: AsyncConnection, request_id: str, user_id: int) -> Any:
    """One request's row, if it is this account's (None otherwise)."""
    return (await conn.execute(select(requests).where(requests.c.id == request_id, requests.c.user_id == user_id))).first()


def request_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "key_id": row.key_id,
        "model": row.model,
        "endpoint": row.endpoint,
        "stream": bool(row.stream),
        "status": request_status(row.state, row.status),
        "http_status": row.http_status,
        "cost_nanos": int(row.cost_nanos or 0),
        "hold_nanos": int(row.hold_nanos or 0),
        "prompt_tokens": int(row.prompt_tokens or 0),
        "completion_tokens": int(row.completion_tokens or 0),
        "cached_tokens": int(row.cached_tokens or 0),
        "estimated": bool(row.estimated),
        "latency_ms": row.latency_ms,
        "ttfb_ms": row.ttfb_ms,
        "created_at": as_utc(row.created_at),
    }


def request_status(state: str, status: str | None) -> str:
    if state == "held":
        return "pending"
    return status if status in REQUEST_STATUSES else "error"


# -- video tasks ---------------------------------------------------------------------------------


async def list_tasks(
    conn: AsyncConnection, user_id: int, flt: UsageFilter, *, limit: int = 20, before: str | None = None
) -> list[dict[str, Any]]:
    """The user's video tasks matching ``flt``, newest first."""
    t = tasks.c
    query = select(tasks).where(t.user_id == user_id, *_common_conditions(tasks, flt))
    if flt.status is not None:
        query = query.where(t.status.in_(TASK_STATUSES_OF.get(flt.status, ())))
    if before is not None:
        query = query.where(await _older_than(conn, tasks, user_id, before))
    query = query.order_by(t.created_at.desc(), t.id.desc()).limit(_page_size(limit))
    return [task_dict(row) for row in await conn.execute(query)]


def task_dict(row: Any) -> dict[str, Any]:
    url = row.video_url if row.status == "succeeded" and is_web_url(row.video_url) else None
    return {
        "id": row.id,
        "key_id": row.key_id,
        "model": row.model,
        "status": row.status,
        "cost_nanos": int(row.cost_nanos or 0),
        "hold_nanos": int(row.hold_nanos or 0),
        "duration_seconds": row.duration_seconds,
        "video_url": url,
        "created_at": as_utc(row.created_at),
        "finished_at": as_utc(row.finished_at),
        "expires_at": as_utc(row.expires_at),
    }


def is_web_url(url: str | None) -> bool:
    """Only http(s) links are ever shown: an upstream's ``javascript:`` URL must not become a link."""
    return bool(url) and url.lower().startswith(("https://", "http://"))  # type: ignore[union-attr]


# -- totals --------------------------------------------------------------------------------------


async def daily_usage(conn: AsyncConnection, user_id: int, flt: UsageFilter) -> list[dict[str, Any]]:
    """Requests, tokens and cost per UTC day and model, oldest day first (``day`` is a ``date``)."""
    r = requests.c
    day = _utc_day(conn, r.created_at)
    query = (
        select(
            day.label("day"),
            r.model,
            func.count().label("requests"),
            func.coalesce(func.sum(r.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(r.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(r.cost_nanos), 0).label("cost_nanos"),
        )
        .where(r.user_id == user_id, *_request_conditions(flt))
        .group_by(day, r.model)
        .order_by(day, r.model)
    )
    return [
        {
            "day": _as_date(row.day),
            "model": row.model,
            "requests": int(row.requests),
            "prompt_tokens": int(row.prompt_tokens),
            "completion_tokens": int(row.completion_tokens),
            "cost_nanos": int(row.cost_nanos),
        }
        for row in await conn.execute(query)
    ]


async def key_totals(conn: AsyncConnection, user_id: int) -> dict[int, dict[str, int]]:
    """Per key of the user: requests, prompt and completion tokens, and cost, over all time."""
    r = requests.c
    query = (
        select(
            r.key_id,
            func.count().label("requests"),
            func.coalesce(func.sum(r.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(r.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(r.cost_nanos), 0).label("cost_nanos"),
        )
        .where(r.user_id == user_id)
        .group_by(r.key_id)
    )
    return {
        int(row.key_id): {
            "requests": int(row.requests),
            "prompt_tokens": int(row.prompt_tokens),
            "completion_tokens": int(row.completion_tokens),
            "cost_nanos": int(row.cost_nanos),
        }
        for row in await conn.execute(query)
    }


# -- helpers -------------------------------------------------------------------------------------


def _common_conditions(table: Any, flt: UsageFilter) -> list[ColumnElement[bool]]:
    c = table.c
    conditions: list[ColumnElement[bool]] = []
    if flt.key_id is not None:
        conditions.append(c.key_id == flt.key_id)
    if flt.model:
        conditions.append(c.model == flt.model)
    if flt.since is not None:
        conditions.append(c.created_at >= flt.since)
    if flt.until is not None:
        conditions.append(c.created_at < flt.until)
    return conditions


async def _older_than(conn: AsyncConnection, table: Any, user_id: int, row_id: str) -> ColumnElement[bool]:
    """Rows after ``row_id`` in newest-first order. The cursor must be one of the user's own rows."""
    c = table.c
    created = None
    if ROW_ID.match(row_id):
        created = await conn.scalar(select(c.created_at).where(c.id == row_id, c.user_id == user_id))
    if created is None:
        raise InvalidRequest("no such page: the 'before' cursor is not one of your rows", param="before")
    # created_at <= t first, so the (user_id, created_at) index bounds the scan on both databases.
    return and_(c.created_at <= created, or_(c.created_at < created, c.id < row_id))


def _page_size(limit: int) -> int:
    return min(max(int(limit), 1), MAX_PAGE)


def _utc_day(conn: AsyncConnection, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column: SQLite stores UTC text, PostgreSQL a timestamptz."""
    if conn.dialect.name == "sqlite":
        return func.date(column)
    return cast(func.timezone("UTC", column), Date)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))

