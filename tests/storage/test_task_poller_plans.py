"""The task poller's round reads the open tasks and the due callbacks, not the table's history.

Every process polls each second. Its questions (anything open?, tasks timed out, tasks due a poll, callbacks due)
must reach their rows through the partial indexes that hold only those, however many finished tasks
are stored; a full read of ``tasks`` costs every process ~15 ms a second per 100,000 of them. The
statements are taken as the poller sends them (bound parameters and all: SQLite uses a partial index
only when the query states its predicate) and planned by the database they ran on. A process with no
open task and no waiting callback asks one question a round.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.support.harness import gateway_settings
from tokenhub.accounts.service import create_key, create_user
from tokenhub.gateway import Gateway
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import tasks
from tokenhub.tasks.poller import TaskPoller

FINISHED = 3000
# The partial indexes of open tasks and due callbacks: each statement of the round reads one of them.
ALLOWED = ("ix_tasks_open", "ix_tasks_callback_due")


async def _history(gw: Gateway) -> None:
    """An account with thousands of finished tasks (half with a delivered callback), one task still running
    and one callback waiting, neither due yet: the round asks every question and finds nothing to do."""
    now = utc_now()
    async with gw.engine.begin() as conn:
        user = await create_user(conn, "poller-plans@example.com")
        _, key = await create_key(conn, user["id"])

        def task(i: int, **values: Any) -> dict[str, Any]:
            row = {
                "id": f"tsk-plan-{i:06d}", "user_id": user["id"], "key_id": key["id"], "model": "m", "upstream_model": "u",
                "upstream_task_id": f"up-{i}", "status": "succeeded", "job": "{}", "price_nanos": 1, "hold_nanos": 1,
                "callback_url": None, "callback_state": None, "next_callback_at": None, "next_poll_at": None,
                "created_at": now - timedelta(days=2), "updated_at": now, "finished_at": now,
            }  # fmt: skip
            row.update(values)
            return row

        rows = [
            task(i, callback_url="https://example.com/hook", callback_state="delivered") if i % 2 else task(i) for i in range(FINISHED)
        ]
        rows.append(task(FINISHED, status="running", finished_at=None, created_at=now, next_poll_at=now + timedelta(hours=1)))
        rows.append(task(FINISHED + 1, callback_url="https://example.com/hook", callback_state="pending",
                         next_callback_at=now + timedelta(hours=1)))  # fmt: skip
        await conn.execute(sa.insert(tasks), rows)


async def _round(database_url: str, home: Path, history: bool) -> list[tuple[str, Any]]:
    """The statements on ``tasks`` of one poller round (``run_once``), as the poller sends them."""
    gw = await Gateway.start(gateway_settings(home, database_url))
    try:
        if history:
            await _history(gw)
        sent: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            if "tasks" in statement:
                sent.append((statement, parameters))

        sa.event.listen(gw.engine.sync_engine, "before_cursor_execute", capture)
        await TaskPoller(gw).run_once()
        sa.event.remove(gw.engine.sync_engine, "before_cursor_execute", capture)
        return sent
    finally:
        await gw.stop()


def _sqlite_plans(path: str, sent: list[tuple[str, Any]]) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return ["\n".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)) for sql, params in sent]
    finally:
        db.close()


async def _postgres_plans(url: str, sent: list[tuple[str, Any]]) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET enable_seqscan = off")  # then a scan of tasks in the plan means no index could serve
        return ["\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *params)) for sql, params in sent]
    finally:
        await conn.close()


def test_a_round_reads_only_the_open_tasks_and_the_waiting_callbacks(database_url: str, tmp_path: Path):
    sent = asyncio.run(_round(database_url, tmp_path / "home", history=True))
    # anything to do?; timed out; due a poll (the lease: the running task is not due yet); callbacks due (nor is its)
    assert len(sent) == 4, sent
    if database_url.startswith("sqlite"):
        plans = _sqlite_plans(database_url.removeprefix("sqlite:///"), sent)
    else:
        plans = asyncio.run(_postgres_plans(database_url, sent))
    for (sql, _), plan in zip(sent, plans):
        assert any(index in plan for index in ALLOWED), f"{sql}\n{plan}"
        # SQLite: "SCAN tasks" reads every row, "SCAN tasks USING INDEX ix_tasks_open" those of the index;
        # PostgreSQL, with sequential scans off: "Seq Scan on tasks" when no index can serve.
        full = [
            line for line in plan.splitlines()
            if "Seq Scan on tasks" in line or (line.strip().startswith("SCAN tasks") and not any(ix in line for ix in ALLOWED))
        ]  # fmt: skip
        assert not full, f"{sql}\nreads the whole table:\n{plan}"


def test_a_round_with_nothing_open_asks_one_question(database_url: str, tmp_path: Path):
    """Most processes have no video task most of the time: their round is one read, not three."""
    sent = asyncio.run(_round(database_url, tmp_path / "home", history=False))
    assert len(sent) == 1 and sent[0][0].lstrip().startswith("SELECT EXISTS"), sent
