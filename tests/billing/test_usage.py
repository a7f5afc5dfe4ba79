"""The usage service on both databases: scoped to the user, filters, keyset pages, UTC days, per-key totals."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, inspect

from tokenhub.accounts.service import create_key, create_user
from tokenhub.billing import usage
from tokenhub.billing.usage import UsageFilter
from tokenhub.config import normalize_database_url
from tokenhub.errors import InvalidRequest
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine
from tokenhub.storage.tables import requests, tasks

T0 = datetime(2026, 11, 20, 23, 59, 59, 999_000, tzinfo=timezone.utc)  # the last moment of Nov 20 (UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def request_row(rid: str, user_id: int, key_id: int, created_at: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "id": rid, "user_id": user_id, "key_id": key_id, "model": "test/a", "endpoint": "chat", "stream": False,
        "state": "settled", "status": "ok", "http_status": 200, "hold_nanos": 5_000, "cost_nanos": 1_000,
        "prompt_tokens": 10, "completion_tokens": 20, "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
        "estimated": False, "latency_ms": 120, "ttfb_ms": 40, "instance_id": "test", "created_at": created_at,
    }
    row.update(values)
    return row


def task_row(tid: str, user_id: int, key_id: int, created_at: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "id": tid, "user_id": user_id, "key_id": key_id, "model": "video/v", "upstream_model": "v", "status": "succeeded",
        "job": "{}", "price_nanos": 100, "hold_nanos": 500, "cost_nanos": 400, "duration_seconds": "4",
        "video_url": "https://cdn.example/v.mp4", "callback_attempts": 0, "poll_attempts": 0,
        "created_at": created_at, "updated_at": created_at,
    }
    row.update(values)
    return row


async def setup(url: str) -> tuple[Any, dict[str, int]]:
    engine = create_engine(normalize_database_url(url))
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        ada = (await create_user(conn, "ada@example.com"))["id"]
        bob = (await create_user(conn, "bob@example.com"))["id"]
        _, k1 = await create_key(conn, ada, name="one")
        _, k2 = await create_key(conn, ada, name="two")
        _, kb = await create_key(conn, bob, name="bob's")
        ids = {"ada": ada, "bob": bob, "k1": k1["id"], "k2": k2["id"], "kb": kb["id"]}
        rows = [
            request_row("gen-a1", ada, k1["id"], at(0)),  # Nov 20, 23:59:59.999
            request_row("gen-a2", ada, k1["id"], at(0.001), model="test/b", cost_nanos=2_000),  # Nov 21, 00:00:00.059
            request_row("gen-a3", ada, k2["id"], at(60), status="upstream_error", http_status=502, cost_nanos=0),
            request_row("gen-a4", ada, k2["id"], at(60)),  # the same instant as a3: the id breaks the tie
            request_row("gen-a5", ada, k1["id"], at(60), cached_tokens=4),
            request_row("gen-a6", ada, k1["id"], at(24 * 60), state="held", status=None, cost_nanos=0),  # Nov 21, 23:59
            request_row("gen-a7", ada, k2["id"], at(24 * 60 + 1), model="test/b"),  # Nov 22
            request_row("gen-b1", bob, kb["id"], at(30), cost_nanos=9_999),
        ]
        await conn.execute(insert(requests), rows)
        await conn.execute(insert(tasks), [
            task_row("tsk-a1", ada, k1["id"], at(1)),
            task_row("tsk-a2", ada, k2["id"], at(2), status="running", cost_nanos=0, video_url=None),
            task_row("tsk-a3", ada, k1["id"], at(3), video_url="javascript:alert(1)"),
            task_row("tsk-b1", bob, kb["id"], at(4)),
        ])
    return engine, ids


def ids_of(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def test_requests_are_scoped_filtered_and_paged(database_url: str):
    async def scenario() -> None:
        engine, ids = await setup(database_url)
        async with engine.connect() as conn:
            everything = await usage.list_requests(conn, ids["ada"], UsageFilter())
            assert ids_of(everything) == ["gen-a7", "gen-a6", "gen-a5", "gen-a4", "gen-a3", "gen-a2", "gen-a1"]
            assert ids_of(await usage.list_requests(conn, ids["bob"], UsageFilter())) == ["gen-b1"]
            # Another customer's key finds nothing, whoever asks.
            assert await usage.list_requests(conn, ids["ada"], UsageFilter(key_id=ids["kb"])) == []
            assert await usage.list_requests(conn, ids["bob"], UsageFilter(key_id=ids["k1"])) == []

            # Keyset pages of 2 add up to the whole list, ties included.
            pages, cursor = [], None
            while True:
                page = await usage.list_requests(conn, ids["ada"], UsageFilter(), limit=2, before=cursor)
                if not page:
                    break
                pages.extend(page)
                cursor = page[-1]["id"]
            assert ids_of(pages) == ids_of(everything)

            # A cursor must be one of the user's own rows.
            for bad in ("gen-b1", "gen-nope", "x" * 500, "gen-a1' OR 1=1 --"):
                with pytest.raises(InvalidRequest):
                    await usage.list_requests(conn, ids["ada"], UsageFilter(), before=bad)

            async def only(**kwargs: Any) -> list[str]:
                return ids_of(await usage.list_requests(conn, ids["ada"], UsageFilter(**kwargs)))

            assert await only(key_id=ids["k2"]) == ["gen-a7", "gen-a4", "gen-a3"]
            assert await only(model="test/b") == ["gen-a7", "gen-a2"]
            assert await only(status="upstream_error") == ["gen-a3"]
            assert await only(status="pending") == ["gen-a6"]
            assert "gen-a6" not in await only(status="ok")
            nov21 = UsageFilter().days(date(2026, 11, 21), date(2026, 11, 21))
            assert await only(since=nov21.since, until=nov21.until) == ["gen-a6", "gen-a5", "gen-a4", "gen-a3", "gen-a2"]
            assert await only(until=UsageFilter().days(None, date(2026, 11, 20)).until) == ["gen-a1"]

            first = everything[-1]
            assert first["status"] == "ok" and first["cost_nanos"] == 1_000 and first["created_at"] == T0
            assert everything[1]["status"] == "pending"
        await engine.dispose()

    asyncio.run(scenario())


def test_daily_totals_are_utc_days_per_model(database_url: str):
    async def scenario() -> None:
        engine, ids = await setup(database_url)
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # a session far from UTC must not move a request to another day
                await conn.exec_driver_sql("SET TIME ZONE 'Asia/Shanghai'")
            days = await usage.daily_usage(conn, ids["ada"], UsageFilter())
            got = [(d["day"], d["model"], d["requests"], d["cost_nanos"]) for d in days]
            assert got == [
                (date(2026, 11, 20), "test/a", 1, 1_000),
                (date(2026, 11, 21), "test/a", 4, 2_000),  # a3 (0), a4, a5, a6 (held: 0)
                (date(2026, 11, 21), "test/b", 1, 2_000),
                (date(2026, 11, 22), "test/b", 1, 1_000),
            ]
            assert days[1]["prompt_tokens"] == 40 and days[1]["completion_tokens"] == 80
            one_key = await usage.daily_usage(conn, ids["ada"], UsageFilter(key_id=ids["k2"]))
            assert sum(d["requests"] for d in one_key) == 3
            assert [d["cost_nanos"] for d in await usage.daily_usage(conn, ids["bob"], UsageFilter())] == [9_999]

            totals = await usage.key_totals(conn, ids["ada"])
            assert totals == {
                ids["k1"]: {"requests": 4, "prompt_tokens": 40, "completion_tokens": 80, "cost_nanos": 4_000},
                ids["k2"]: {"requests": 3, "prompt_tokens": 30, "completion_tokens": 60, "cost_nanos": 2_000},
            }
            assert set(await usage.key_totals(conn, ids["bob"])) == {ids["kb"]}
        await engine.dispose()

    asyncio.run(scenario())


def test_tasks_are_scoped_and_only_web_links_are_kept(database_url: str):
    async def scenario() -> None:
        engine, ids = await setup(database_url)
        async with engine.connect() as conn:
            mine = await usage.list_tasks(conn, ids["ada"], UsageFilter())
            assert ids_of(mine) == ["tsk-a3", "tsk-a2", "tsk-a1"]
            assert [t["video_url"] for t in mine] == [None, None, "https://cdn.example/v.mp4"]  # javascript: is dropped
            assert ids_of(await usage.list_tasks(conn, ids["bob"], UsageFilter())) == ["tsk-b1"]
            assert await usage.list_tasks(conn, ids["bob"], UsageFilter(key_id=ids["k1"])) == []
            assert ids_of(await usage.list_tasks(conn, ids["ada"], UsageFilter(status="pending"))) == ["tsk-a2"]
            assert ids_of(await usage.list_tasks(conn, ids["ada"], UsageFilter(status="ok"))) == ["tsk-a3", "tsk-a1"]
            assert await usage.list_tasks(conn, ids["ada"], UsageFilter(status="client_closed")) == []
            assert ids_of(await usage.list_tasks(conn, ids["ada"], UsageFilter(), limit=1, before="tsk-a3")) == ["tsk-a2"]
            with pytest.raises(InvalidRequest):
                await usage.list_tasks(conn, ids["ada"], UsageFilter(), before="tsk-b1")
            indexes = await conn.run_sync(lambda sync: {i["name"] for i in inspect(sync).get_indexes("requests")})
            assert "ix_requests_key_created" in indexes  # migration 0005
        await engine.dispose()

    asyncio.run(scenario())
