"""spend_by_period keeps the days a limit can still read, whatever the history.

Its rows are read for the current day, week and month (a spend limit's check at each hold, `tokenhub ledger
check`); the sweeper deletes the days before the previous month once a day, through an index of the rows by
day rather than a read of the whole table, and a limit counts what it counted before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support.harness import gateway_settings
from tokenhub.accounts.service import create_key, create_user
from tokenhub.billing.ledger import Hold
from tokenhub.billing.service import add_credits
from tokenhub.errors import LimitReached
from tokenhub.gateway import Gateway
from tokenhub.limits.policy import spend_kept_from
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import spend_by_period


@pytest.mark.parametrize(
    ("today", "kept_from"),
    [
        (date(2026, 3, 10), date(2026, 2, 1)),
        (date(2026, 3, 1), date(2026, 2, 1)),  # the month's first day: the week began in February
        (date(2026, 1, 31), date(2025, 12, 1)),  # across a year
        (date(2024, 3, 31), date(2024, 2, 1)),  # a leap February
    ],
)
def test_the_days_kept_start_with_the_previous_month(today: date, kept_from: date):
    assert spend_kept_from(today) == kept_from
    monday = today - timedelta(days=today.weekday())
    assert kept_from <= min(monday, today.replace(day=1)) - timedelta(days=21)  # every period read, and three weeks more


def _rows(key_id: int, user_id: int, days: list[date], amount: int = 100) -> list[dict[str, Any]]:
    rows = [{"scope": "user", "ident": user_id, "period": "total", "start": "1970-01-01", "amount": amount * 2 * len(days)}]
    for day in days:
        rows.append({"scope": "key", "ident": key_id, "period": "day", "start": day.isoformat(), "amount": amount})
        rows.append({"scope": "user", "ident": user_id, "period": "day", "start": day.isoformat(), "amount": amount})
    return rows


async def _customer(gw: Gateway, email: str) -> tuple[int, int]:
    """An account with credits and a key: (account id, key id)."""
    async with gw.engine.begin() as conn:
        user = await create_user(conn, email)
        await add_credits(conn, user["id"], 10**9)
        _, key = await create_key(conn, user["id"])
    return user["id"], key["id"]


async def _stored(gw: Gateway) -> set[tuple[str, str, str]]:
    async with gw.engine.connect() as conn:
        return {(r.scope, r.period, r.start) for r in await conn.execute(sa.select(spend_by_period))}


def test_the_sweeper_prunes_the_days_no_limit_reads(database_url: str, tmp_path: Path):
    async def scenario() -> None:
        gw = await Gateway.start(gateway_settings(tmp_path / "home", database_url))
        try:
            user_id, key_id = await _customer(gw, "pruned@example.com")
            today = utc_now().date()
            kept_from = spend_kept_from(today)
            old = [kept_from - timedelta(days=n) for n in (1, 2, 40, 400)]
            recent = sorted({kept_from, today.replace(day=1), today - timedelta(days=today.weekday()), today})
            async with gw.engine.begin() as conn:
                await conn.execute(sa.delete(spend_by_period))
                await conn.execute(sa.insert(spend_by_period), _rows(key_id, user_id, old + recent))

            assert await gw.sweeper.prune_spend(today) == 2 * len(old)
            expected = {("user", "total", "1970-01-01")}
            expected |= {(scope, "day", day.isoformat()) for day in recent for scope in ("key", "user")}
            assert await _stored(gw) == expected
            assert await gw.sweeper.prune_spend(today) == 0  # another process, or the next round: nothing left

            # A limit by month still counts every day of the month: 100 spent on each of this month's days kept.
            spent = 100 * len({d for d in recent if d >= today.replace(day=1)})
            budget = (("key", key_id, "month", spent + 500),)
            with pytest.raises(LimitReached):
                await gw.ledger.hold(Hold("gen-prune-over", user_id, key_id, 501, "m", budgets=budget))
            await gw.ledger.hold(Hold("gen-prune-fits", user_id, key_id, 500, "m", budgets=budget))
        finally:
            await gw.stop()

    asyncio.run(scenario())


def test_a_process_prunes_at_its_first_round_and_then_once_a_day(database_url: str, tmp_path: Path):
    async def scenario() -> None:
        gw = await Gateway.start(gateway_settings(tmp_path / "home", database_url))
        try:
            user_id, key_id = await _customer(gw, "daily@example.com")
            stale = spend_kept_from(utc_now().date()) - timedelta(days=3)
            async with gw.engine.begin() as conn:
                await conn.execute(sa.insert(spend_by_period), _rows(key_id, user_id, [stale])[1:])
            await gw.sweeper._beat_and_sweep()  # the first round of this process
            assert not [row for row in await _stored(gw) if row[2] == stale.isoformat()]
            async with gw.engine.begin() as conn:
                await conn.execute(sa.insert(spend_by_period), _rows(key_id, user_id, [stale])[1:])
            await gw.sweeper._beat_and_sweep()  # the same day: a sweep of holds, no prune
            assert len([row for row in await _stored(gw) if row[2] == stale.isoformat()]) == 2
        finally:
            await gw.stop()

    asyncio.run(scenario())


def test_the_old_days_are_found_through_the_index(database_url: str, tmp_path: Path):
    """The primary key starts with the key or account: without ix_spend_by_period_day, finding the old days
    reads the whole table, in every process, once a day."""

    async def scenario() -> list[tuple[str, Any]]:
        gw = await Gateway.start(gateway_settings(tmp_path / "home", database_url))
        try:
            user_id, key_id = await _customer(gw, "indexed@example.com")
            today = utc_now().date()
            days = [today - timedelta(days=n) for n in range(120)]
            rows = _rows(key_id, user_id, days)
            rows += [{**row, "ident": row["ident"] + 1000 + i} for i in range(20) for row in rows[1:]]  # twenty more keys and accounts
            async with gw.engine.begin() as conn:
                await conn.execute(sa.insert(spend_by_period), rows)
            sent: list[tuple[str, Any]] = []

            def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
                if "spend_by_period" in statement:
                    sent.append((statement, parameters))

            sa.event.listen(gw.engine.sync_engine, "before_cursor_execute", capture)
            assert await gw.sweeper.prune_spend(today) > 0
            sa.event.remove(gw.engine.sync_engine, "before_cursor_execute", capture)
            return sent
        finally:
            await gw.stop()

    sent = asyncio.run(scenario())
    assert len(sent) > 1 and sent[0][0].lstrip().startswith("SELECT")
    if database_url.startswith("sqlite"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            plans = ["\n".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)) for sql, params in sent]
        finally:
            db.close()
    else:

        async def explain() -> list[str]:
            import asyncpg

            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute("SET enable_seqscan = off")
                return ["\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *params)) for sql, params in sent]
            finally:
                await conn.close()

        plans = asyncio.run(explain())
    for (sql, _), plan in zip(sent, plans):
        assert "ix_spend_by_period_day" in plan, f"{sql}\n{plan}"
