"""No hold outlives its request: release the holds of gateway processes that died.

Each process registers itself in ``instances`` (host, pid) and refreshes a heartbeat. A hold
belongs to a dead process when its instance row is gone, its heartbeat is stale, or it ran on
this host under a pid that no longer exists (which is how a restart after ``kill -9`` cleans up
at once). Such holds are released through the ledger writer (which reads a request's state under
its transaction's lock and resolves only a hold still open), so a hold that its own process settles
at the same moment is still resolved exactly once. A hold younger than the
sweep interval is left alone unless its process is known dead on this host: a process that was only
paused or cut off from the database comes back, finds its row gone at its next heartbeat and
registers again at once, and whatever it settles of a hold released meanwhile is charged late (see
``ledger.py``): a pause never makes service free.

Once a day (and at each start) it also deletes the rows of ``spend_by_period`` of days that no spend
limit reads any more (``limits.policy.spend_kept_from``: before the previous month), so that table keeps
a few weeks of days whatever the history.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import date, datetime, timedelta

from sqlalchemy import delete, insert, select, update

from tokenhub.billing.ledger import LedgerWriter, Settlement
from tokenhub.limits.policy import spend_kept_from
from tokenhub.periodic import Periodic
from tokenhub.storage import AsyncEngine
from tokenhub.storage.engine import as_utc, utc_now
from tokenhub.storage.tables import instances, requests, spend_by_period

log = logging.getLogger("tokenhub.sweeper")


def new_instance_id() -> str:
    return f"{os.getpid()}-{secrets.token_hex(6)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Sweeper:
    def __init__(self, engine: AsyncEngine, ledger: LedgerWriter, instance_id: str, stale_after: float) -> None:
        self._engine = engine
        self._ledger = ledger
        self.instance_id = instance_id
        self._stale_after = stale_after
        self._host = socket.gethostname()[:255]
        self._periodic = Periodic("hold sweep", max(stale_after / 3, 0.2), self._beat_and_sweep)
        self._pruned_on: date | None = None  # the day this process last pruned spend_by_period

    async def register(self) -> None:
        now = utc_now()
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(instances).values(id=self.instance_id, host=self._host, pid=os.getpid(), started_at=now, heartbeat_at=now)
            )

    async def unregister(self) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(instances).where(instances.c.id == self.instance_id))

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _beat_and_sweep(self) -> None:
        await self.heartbeat()
        await self.sweep()
        today = utc_now().date()
        if today != self._pruned_on:
            await self.prune_spend(today)
            self._pruned_on = today

    async def prune_spend(self, today: date) -> int:
        """Delete the rows of spend_by_period of days before ``spend_kept_from(today)``; returns how many.
        One transaction per day pruned, so that a first prune of a long history never holds the write
        lock the ledger's commits need for long (every process prunes: the others then find nothing)."""
        day_rows = spend_by_period.c.period == "day"
        cutoff = spend_kept_from(today).isoformat()
        async with self._engine.connect() as conn:
            query = select(spend_by_period.c.start).where(day_rows, spend_by_period.c.start < cutoff).distinct()
            days = sorted(row[0] for row in await conn.execute(query))
        pruned = 0
        for day in days:
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(spend_by_period).where(day_rows, spend_by_period.c.start == day))
                pruned += result.rowcount
        if pruned:
            log.info("pruned %d rows of spend by period, of %d days before %s", pruned, len(days), cutoff)
        return pruned

    async def heartbeat(self) -> None:
        """Refresh this process's row; re-create it if another process declared this one dead."""
        now = utc_now()
        async with self._engine.begin() as conn:
            result = await conn.execute(update(instances).where(instances.c.id == self.instance_id).values(heartbeat_at=now))
            if result.rowcount == 0:
                await conn.execute(
                    insert(instances).values(id=self.instance_id, host=self._host, pid=os.getpid(), started_at=now, heartbeat_at=now)
                )
                log.warning("this process had been declared dead (paused, or cut off from the database): registered again")

    async def sweep(self) -> int:
        """Release every open hold of a dead process; returns how many were released."""
        cutoff = utc_now() - timedelta(seconds=self._stale_after)
        gone, silent = await self._dead_instances(cutoff)
        if not gone and not silent:
            return 0
        held = (
            requests.c.state == "held",
            requests.c.endpoint != "video",  # a video task outlives its process: the poller settles it
        )
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(requests.c.id, requests.c.user_id, requests.c.key_id, requests.c.hold_nanos).where(
                        *held,
                        requests.c.instance_id.in_(gone)
                        | (requests.c.instance_id.in_(silent) & (requests.c.created_at < cutoff)),
                    )
                )
            ).all()
        for row in rows:
            self._ledger.settle(
                Settlement(
                    request_id=row.id,
                    user_id=row.user_id,
                    key_id=row.key_id,
                    hold=row.hold_nanos,
                    cost=0,
                    status="interrupted",
                    error="the gateway process handling this request stopped; the hold was released",
                    release_only=True,
                )
            )
        await self._ledger.flush()
        if rows:
            log.info("released %d holds of stopped gateway processes", len(rows))
        async with self._engine.begin() as conn:
            await conn.execute(delete(instances).where(instances.c.id.in_(gone + silent)))
        return len(rows)

    async def _dead_instances(self, cutoff: datetime) -> tuple[list[str], list[str]]:
        """Processes known dead (a pid gone on this host) and processes silent since ``cutoff`` (stale
        heartbeat, or no row at all), whose holds are released once they are older than the cutoff."""
        async with self._engine.connect() as conn:
            known = {row.id: row for row in await conn.execute(select(instances))}
            holders = {
                r[0]
                for r in await conn.execute(select(requests.c.instance_id).where(requests.c.state == "held").distinct())
            }
        gone: list[str] = []
        silent: list[str] = []
        for instance_id in holders | set(known):
            if instance_id == self.instance_id:
                continue
            row = known.get(instance_id)
            if row is not None and row.host == self._host and not _pid_alive(row.pid):
                gone.append(instance_id)
            elif row is None or as_utc(row.heartbeat_at) < cutoff:
                silent.append(instance_id)
        return gone, silent
