"""What operators see of the traffic: aggregates over the ``requests`` table.

Used by the console's operator pages and ``GET /api/admin/stats/...``. Definitions (also in
docs/console.md, "Operator pages"):

* **request**: a row of ``requests`` (chat, image or video), counted on the day it was created.
* **error**: a finished request whose status is neither ``ok`` nor ``client_closed``.
* **revenue**: the settled ``cost_nanos``, what customers paid (at the operator's prices).
* **upstream cost**: TokenHub does not see the vendors' invoices. It is the request's tokens priced at
  the *shipped* catalog's list prices (``catalog/models.yaml``, which is researched from the vendors'
  public prices), with the same per-token-class arithmetic as billing (``billing.cost.usage_cost``),
  rounded once per (day, model, channel) group. Only chat requests of shipped models have a list
  price; the revenue of everything else (media, operator-added models) is reported as
  ``unpriced_revenue``, and ``margin`` is computed over list-priced traffic only, never guessed.
* **latency**: ``latency_ms`` of successful requests; p50 and p95 are nearest-rank percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select

from tokenhub.billing.cost import usage_cost
from tokenhub.catalog.model import Pricing
from tokenhub.catalog.service import shipped
from tokenhub.errors import InvalidRequest
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import as_utc, utc_now
from tokenhub.storage.tables import channels, requests, users
from tokenhub.tokens import Usage

WINDOW_DAYS = (1, 7, 30, 90)
NOT_ERRORS = ("ok", "client_closed")
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens")
R = requests.c


CHAT_ENDPOINTS = ("chat", "messages", "responses", "completions")  # billed per token at the chat model's prices


def list_prices() -> dict[str, Pricing]:
    """The shipped catalog's list prices by model id: what the upstream is assumed to charge."""
    return {m.id: m.pricing for m in shipped()[1] if m.kind == "chat"}


def check_days(days: int) -> int:
    if days not in WINDOW_DAYS:
        raise InvalidRequest(f"days must be one of {', '.join(map(str, WINDOW_DAYS))}", param="days")
    return days


def _is_error() -> ColumnElement[bool]:
    return and_(R.state != "held", func.coalesce(R.status, "").not_in(NOT_ERRORS))


def _errors() -> ColumnElement[int]:
    return func.coalesce(func.sum(case((_is_error(), 1), else_=0)), 0)


def _revenue() -> ColumnElement[int]:
    return func.coalesce(func.sum(case((R.state == "settled", R.cost_nanos), else_=0)), 0)


def _day(conn: AsyncConnection) -> ColumnElement[str]:
    """``YYYY-MM-DD`` (UTC) of ``created_at``, in this database's dialect."""
    if conn.dialect.name == "sqlite":
        return func.date(R.created_at)  # SQLite stores the UTC wall-clock time as text
    return func.to_char(func.timezone("UTC", R.created_at), "YYYY-MM-DD")


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    revenue_nanos: int = 0
    upstream_cost_nanos: int = 0
    priced_revenue_nanos: int = 0  # revenue of the requests that have an upstream cost
    overage_nanos: int = 0  # usage cost upstreams reported beyond what the accounts could pay (not charged)
    extra: dict[str, Any] = field(default_factory=dict)  # the group's key (day, model, channel...)

    def add(self, other: "Totals") -> None:
        for name in ("requests", "errors", *TOKEN_FIELDS, "revenue_nanos", "upstream_cost_nanos", "priced_revenue_nanos",
                     "overage_nanos"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 4) if self.requests else 0.0,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.prompt_tokens + self.completion_tokens,
            "revenue_nanos": self.revenue_nanos,
            "upstream_cost_nanos": self.upstream_cost_nanos,
            "unpriced_revenue_nanos": self.revenue_nanos - self.priced_revenue_nanos,
            "margin_nanos": self.priced_revenue_nanos - self.upstream_cost_nanos,
            "overage_nanos": self.overage_nanos,
        }


def window_start(days: int, now: datetime | None = None) -> datetime:
    """Midnight (UTC) that starts a window of ``days`` calendar days ending today."""
    today = (now or utc_now()).astimezone(timezone.utc).date()
    return datetime.combine(today - timedelta(days=days - 1), time(0), tzinfo=timezone.utc)


async def _groups(conn: AsyncConnection, since: datetime) -> list[Totals]:
    """One ``Totals`` per (day, model, channel, endpoint) since ``since``, with its upstream cost."""
    day = _day(conn).label("day")
    query = (
        select(
            day, R.model, R.channel_id, R.endpoint, func.count().label("n"), _errors().label("errors"), _revenue().label("revenue"),
            func.coalesce(func.sum(R.overage_nanos), 0).label("overage"),
            *(func.coalesce(func.sum(getattr(R, name)), 0).label(name) for name in TOKEN_FIELDS),
        )
        .where(R.created_at >= since)
        .group_by(day, R.model, R.channel_id, R.endpoint)
    )
    prices = list_prices()
    groups = []
    for row in await conn.execute(query):
        tokens = {name: int(getattr(row, name)) for name in TOKEN_FIELDS}
        group = Totals(
            requests=int(row.n), errors=int(row.errors), revenue_nanos=int(row.revenue), overage_nanos=int(row.overage), **tokens
        )
        group.extra = {"day": str(row.day), "model": row.model, "channel_id": row.channel_id}
        pricing = prices.get(row.model) if row.endpoint in CHAT_ENDPOINTS else None
        if pricing is not None:
            usage = Usage(
                prompt_tokens=tokens["prompt_tokens"], completion_tokens=tokens["completion_tokens"],
                cached_tokens=tokens["cached_tokens"], cache_write_tokens=tokens["cache_write_tokens"],
                reasoning_tokens=tokens["reasoning_tokens"],
            )
            group.upstream_cost_nanos = usage_cost(usage, pricing)
            group.priced_revenue_nanos = group.revenue_nanos
        groups.append(group)
    return groups


def _roll_up(groups: list[Totals], key: str) -> dict[Any, Totals]:
    rolled: dict[Any, Totals] = {}
    for group in groups:
        value = group.extra[key]
        if value not in rolled:
            rolled[value] = Totals(extra={key: value})
        rolled[value].add(group)
    return rolled


async def _channel_names(conn: AsyncConnection) -> dict[int, str]:
    return {row.id: row.name for row in await conn.execute(select(channels.c.id, channels.c.name))}


async def top_customers(conn: AsyncConnection, since: datetime, limit: int = 10) -> list[dict[str, Any]]:
    revenue = _revenue().label("revenue")
    query = (
        select(
            R.user_id, users.c.email, func.count().label("n"), revenue,
            func.coalesce(func.sum(R.prompt_tokens + R.completion_tokens), 0).label("tokens"),
        )
        .join(users, users.c.id == R.user_id)
        .where(R.created_at >= since)
        .group_by(R.user_id, users.c.email)
        .order_by(revenue.desc(), R.user_id)
        .limit(limit)
    )
    return [
        {"user_id": row.user_id, "email": row.email, "requests": int(row.n), "tokens": int(row.tokens), "revenue_nanos": int(row.revenue)}
        for row in await conn.execute(query)
    ]


async def recent_errors(conn: AsyncConnection, since: datetime, limit: int = 10) -> list[dict[str, Any]]:
    query = (
        select(R.id, R.created_at, R.model, R.channel_id, R.status, R.http_status, R.error, channels.c.name.label("channel"))
        .outerjoin(channels, channels.c.id == R.channel_id)
        .where(R.created_at >= since, _is_error())
        .order_by(R.created_at.desc(), R.id)
        .limit(limit)
    )
    return [
        {
            "request_id": row.id, "created_at": as_utc(row.created_at), "model": row.model, "channel_id": row.channel_id,
            "channel": row.channel, "status": row.status, "http_status": row.http_status, "error": (row.error or "")[:300],
        }
        for row in await conn.execute(query)
    ]


async def error_counts(conn: AsyncConnection, since: datetime) -> list[dict[str, Any]]:
    """Errors by status and HTTP status, most frequent first."""
    n = func.count().label("n")
    query = (
        select(R.status, R.http_status, n)
        .where(R.created_at >= since, _is_error())
        .group_by(R.status, R.http_status)
        .order_by(n.desc(), R.status, R.http_status)
    )
    return [{"status": row.status, "http_status": row.http_status, "count": int(row.n)} for row in await conn.execute(query)]


async def overview(conn: AsyncConnection, days: int = 7, *, now: datetime | None = None) -> dict[str, Any]:
    """Totals, by day (every day of the window, oldest first), by model and by channel (most revenue
    first), the top customers and the errors, over the last ``days`` calendar days (UTC)."""
    since = window_start(check_days(days), now)
    groups = await _groups(conn, since)
    total = Totals()
    for group in groups:
        total.add(group)
    by_day = _roll_up(groups, "day")
    day_list = [(since + timedelta(days=i)).date().isoformat() for i in range(days)]
    names = await _channel_names(conn)
    by_channel = []
    for channel_id, totals in _roll_up(groups, "channel_id").items():
        totals.extra["channel"] = names.get(channel_id) if channel_id is not None else None
        by_channel.append(totals)

    def ranked(items: list[Totals]) -> list[dict[str, Any]]:
        return [t.as_dict() for t in sorted(items, key=lambda t: (-t.revenue_nanos, -t.requests, str(list(t.extra.values()))))]

    return {
        "days": days,
        "since": since,
        "totals": total.as_dict(),
        "by_day": [(by_day.get(d) or Totals(extra={"day": d})).as_dict() for d in day_list],
        "by_model": ranked(list(_roll_up(groups, "model").values())),
        "by_channel": ranked(by_channel),
        "top_customers": await top_customers(conn, since),
        "errors": await error_counts(conn, since),
        "recent_errors": await recent_errors(conn, since),
    }


# -- per channel: traffic, errors and latency over the last hour and day -----------------------

CHANNEL_WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def _empty_window() -> dict[str, Any]:
    return {"requests": 0, "errors": 0, "error_rate": 0.0, "avg_ms": None, "p50_ms": None, "p95_ms": None}


async def _window(conn: AsyncConnection, since: datetime) -> dict[int, dict[str, Any]]:
    ok = R.status == "ok"
    latency = case((and_(ok, R.latency_ms.is_not(None)), R.latency_ms), else_=None)
    counts = select(R.channel_id, func.count().label("n"), _errors().label("errors"), func.avg(latency).label("avg")).where(
        R.created_at >= since, R.channel_id.is_not(None)
    ).group_by(R.channel_id)
    out: dict[int, dict[str, Any]] = {}
    for row in await conn.execute(counts):
        stats = out[row.channel_id] = _empty_window()
        stats.update(requests=int(row.n), errors=int(row.errors), error_rate=round(int(row.errors) / int(row.n), 4))
        stats["avg_ms"] = round(float(row.avg)) if row.avg is not None else None
    # nearest-rank percentiles: the ceil(p * n)-th smallest latency, ranked by the database
    ranked = (
        select(
            R.channel_id, R.latency_ms,
            func.row_number().over(partition_by=R.channel_id, order_by=(R.latency_ms, R.id)).label("rank"),
            func.count().over(partition_by=R.channel_id).label("n"),
        )
        .where(R.created_at >= since, R.channel_id.is_not(None), ok, R.latency_ms.is_not(None))
        .subquery()
    )
    p50_rank = (ranked.c.n + literal(1)) // 2
    p95_rank = (ranked.c.n * 95 + literal(99)) // 100
    picks = select(ranked.c.channel_id, ranked.c.latency_ms, ranked.c.rank, ranked.c.n).where(
        (ranked.c.rank == p50_rank) | (ranked.c.rank == p95_rank)
    )
    for row in await conn.execute(picks):
        stats = out.setdefault(row.channel_id, _empty_window())
        n = int(row.n)
        if row.rank == (n + 1) // 2:
            stats["p50_ms"] = int(row.latency_ms)
        if row.rank == (95 * n + 99) // 100:
            stats["p95_ms"] = int(row.latency_ms)
    return out


async def channel_stats(conn: AsyncConnection, *, now: datetime | None = None) -> dict[int, dict[str, dict[str, Any]]]:
    """{channel id: {"hour": {...}, "day": {...}}} for every channel that served a request in the last day."""
    now = now or utc_now()
    windows = {name: await _window(conn, now - span) for name, span in CHANNEL_WINDOWS.items()}
    ids = set().union(*windows.values())
    return {cid: {name: windows[name].get(cid) or _empty_window() for name in CHANNEL_WINDOWS} for cid in ids}


def empty_channel_stats() -> dict[str, dict[str, Any]]:
    return {name: _empty_window() for name in CHANNEL_WINDOWS}
