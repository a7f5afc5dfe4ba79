"""Usage: every request and video task of the signed-in customer, filters, keyset pages, CSV export.

Filters come from the query string (``key``, ``model``, ``status``, ``from``, ``to``: UTC days,
inclusive) and are shared by the page and ``/usage.csv``. Every query goes through
``billing.usage`` with the signed-in user's id, so no parameter reaches another customer's rows; a key
id that is not one of the user's answers 404, as if it did not exist.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiMapping

from tokenhub.accounts import service as accounts
from tokenhub.billing import usage
from tokenhub.billing.usage import UsageFilter
from tokenhub.console.core import SECURITY_HEADERS, Ctx, Pages, page
from tokenhub.console.forms import parse_day, parse_int
from tokenhub.errors import GatewayError, InvalidRequest, NotFound
from tokenhub.money import format_usd
from tokenhub.storage.engine import utc_now

PAGE = 50
TASKS_PAGE = 20
CSV_CAP = 100_000  # rows in one export, newest first; narrow the dates for more
CSV_CHUNK = 1_000  # rows per database round trip (one short connection each)
MAX_MODEL = 200
FILTER_FIELDS = ("key", "model", "status", "from", "to")
ERROR_PARAMS = (*FILTER_FIELDS, "before")  # each has a usage.invalid_<param> message
CSV_COLUMNS = (
    "time_utc", "request_id", "model", "endpoint", "key_id", "key_name", "status", "http_status", "prompt_tokens",
    "completion_tokens", "cached_tokens", "cost_usd", "latency_ms", "ttfb_ms", "stream", "estimated",
)


@dataclass
class Filters:
    """The query string's filters: the raw values (to refill the form and build links) and the parsed filter."""

    values: dict[str, str]
    flt: UsageFilter = field(default_factory=UsageFilter)

    @property
    def active(self) -> bool:
        return any(self.values.values())

    def link(self, path: str = "/usage", **extra: str) -> str:
        params = {name: value for name, value in {**self.values, **extra}.items() if value}
        return f"{path}?{urlencode(params)}" if params else path


def read_filters(query: MultiMapping[str], own_keys: Iterable[int]) -> Filters:
    """Parse the filters; a malformed one is an ``InvalidRequest`` naming it, another's key a ``NotFound``."""
    values = {name: query.get(name, "").strip() for name in FILTER_FIELDS}
    filters = Filters(values)
    key_id = parse_int(values["key"], "key", low=1, high=2**31 - 1) if values["key"] else None
    if key_id is not None and key_id not in set(own_keys):
        raise NotFound("no such key", param="key")
    if len(values["model"]) > MAX_MODEL:
        raise InvalidRequest("the model name is too long", param="model")
    if values["status"] and values["status"] not in usage.STATUSES:
        raise InvalidRequest("unknown status", param="status")
    first, last = parse_day(values["from"], "from"), parse_day(values["to"], "to")
    if first and last and last < first:
        raise InvalidRequest("the end date is before the start date", param="to")
    filters.flt = UsageFilter(key_id, values["model"] or None, values["status"] or None).days(first, last)
    return filters


def safe_cell(text: str | None) -> str:
    """A text cell a spreadsheet will not run as a formula (key names are the customer's own text)."""
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(row: dict[str, Any], key_names: dict[int, str]) -> list[Any]:
    return [
        row["created_at"].isoformat(), row["id"], safe_cell(row["model"]), row["endpoint"], row["key_id"],
        safe_cell(key_names.get(row["key_id"])), row["status"], row["http_status"] or "", row["prompt_tokens"],
        row["completion_tokens"], row["cached_tokens"], format_usd(row["cost_nanos"]), row["latency_ms"] or "",
        row["ttfb_ms"] or "", int(row["stream"]), int(row["estimated"]),
    ]


class UsagePages(Pages):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/usage", self.usage_page), web.get("/usage.csv", self.usage_csv)]

    async def own_keys(self, ctx: Ctx) -> list[dict[str, Any]]:
        async with self.gw.engine.connect() as conn:
            return await accounts.list_keys(conn, ctx.user_id)

    @page("user")
    async def usage_page(self, ctx: Ctx) -> web.StreamResponse:
        keys = await self.own_keys(ctx)
        query = ctx.request.query
        values: dict[str, Any] = {"rows": [], "tasks": [], "older": None, "older_tasks": None, "error": None}
        status = 200
        try:
            filters = read_filters(query, (key["id"] for key in keys))
            values.update(await self.results(ctx, filters, query.get("before") or None, query.get("tasks_before") or None))
        except GatewayError as err:
            filters = Filters({name: query.get(name, "").strip() for name in FILTER_FIELDS})
            message = f"usage.invalid_{err.param}" if err.param in ERROR_PARAMS else "usage.invalid"
            values["error"], status = ctx.t(message), err.status
        models = sorted(m.id for m in self.gw.directory.catalog.models.values() if m.enabled)
        return self.render(
            ctx, "usage.html", status=status, title=ctx.t("usage.title"), filters=filters, keys=keys,
            key_names={key["id"]: key["name"] for key in keys}, statuses=usage.STATUSES, models=models,
            paged=bool(query.get("before") or query.get("tasks_before")), csv_cap=f"{CSV_CAP:,}", now=utc_now(), **values,
        )

    async def results(self, ctx: Ctx, filters: Filters, before: str | None, tasks_before: str | None) -> dict[str, Any]:
        async with self.gw.engine.connect() as conn:
            rows = await usage.list_requests(conn, ctx.user_id, filters.flt, limit=PAGE + 1, before=before)
            tasks = await usage.list_tasks(conn, ctx.user_id, filters.flt, limit=TASKS_PAGE + 1, before=tasks_before)
        older = filters.link(before=rows[PAGE - 1]["id"]) + "#requests" if len(rows) > PAGE else None
        older_tasks = filters.link(tasks_before=tasks[TASKS_PAGE - 1]["id"]) + "#tasks" if len(tasks) > TASKS_PAGE else None
        return {"rows": rows[:PAGE], "tasks": tasks[:TASKS_PAGE], "older": older, "older_tasks": older_tasks}

    @page("user")
    async def usage_csv(self, ctx: Ctx) -> web.StreamResponse:
        """The filtered requests as CSV, newest first, streamed a chunk at a time (at most ``CSV_CAP`` rows)."""
        keys = await self.own_keys(ctx)
        filters = read_filters(ctx.request.query, (key["id"] for key in keys))  # errors: the friendly error page
        key_names = {key["id"]: key["name"] for key in keys}
        response = web.StreamResponse(headers={
            **SECURITY_HEADERS,
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="tokenhub-usage-{utc_now():%Y-%m-%d}.csv"',
        })
        await response.prepare(ctx.request)
        await response.write(("\ufeff" + self.csv_text([CSV_COLUMNS])).encode())  # BOM: spreadsheets read UTF-8
        sent, before = 0, None
        while sent < CSV_CAP:
            async with self.gw.engine.connect() as conn:  # released before writing: a slow client holds no lock
                rows = await usage.list_requests(
                    conn, ctx.user_id, filters.flt, limit=min(CSV_CHUNK, CSV_CAP - sent), before=before
                )
            if not rows:
                break
            await response.write(self.csv_text(csv_row(row, key_names) for row in rows).encode())
            sent, before = sent + len(rows), rows[-1]["id"]
        await response.write_eof()
        return response

    @staticmethod
    def csv_text(rows: Iterable[Iterable[Any]]) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(rows)
        return out.getvalue()

