"""The task poller: every open video task reaches a terminal state, and is settled exactly once.

Each gateway process runs one. A round:

1. **Lease** due tasks: ``UPDATE tasks SET lease_owner = me, lease_until = now + LEASE`` on open
   tasks whose ``next_poll_at`` has come and whose lease is free (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL), so two processes never poll the same task at once.
2. **Poll** each upstream; a task still running gets its next poll with backoff (2 s doubling to
   30 s; longer when the upstream says 429).
3. **Finish** a task that ended: first the ledger settles its hold (charge the reported duration
   at the task's price, or release everything) and the poller *waits for that commit*; then the
   task row flips to its terminal state with a compare-and-swap on the status. A crash between the
   two only means the next round polls again and settles again — which the ledger's own
   compare-and-swap turns into a no-op. So a charge or a refund happens exactly once, whatever is
   seen twice and whoever polls.
4. **Time out** tasks older than ``TOKENHUB_TASK_TIMEOUT`` (release everything), and tasks that
   never got an upstream id (the process died while submitting).
5. **Deliver callbacks** of finished tasks (see callbacks.py).
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, exists, or_, select, text, update

from tokenhub.billing.ledger import Settlement
from tokenhub.errors import GatewayError, RateLimited
from tokenhub.periodic import Periodic
from tokenhub.providers.media.base import TERMINAL_STATES, TaskUpdate, VideoJob
from tokenhub.providers.registry import video_adapters
from tokenhub.providers.upstream_http import fetch
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import TASKS_CALLBACK_DUE, TASKS_OPEN, tasks
from tokenhub.tasks.callbacks import deliver_due_callbacks
from tokenhub.tasks.service import cost_of
from tokenhub.tokens import Usage
from tokenhub.vendors import PROVIDERS

if TYPE_CHECKING:  # the gateway wires the tasks in: a type only
    from tokenhub.gateway import Gateway

log = logging.getLogger("tokenhub.tasks")

LEASE = timedelta(seconds=60)
BATCH = 20
MAX_BACKOFF = 30.0


def backoff(attempts: int, base: float) -> float:
    return min(base * 2 ** min(attempts, 5), MAX_BACKOFF) * random.uniform(0.9, 1.1)


class TaskPoller:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.base = gw.settings.task_poll_base
        self.timeout = timedelta(seconds=gw.settings.task_timeout)
        self._periodic = Periodic("task poller", min(1.0, self.base), self.run_once)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run_once(self) -> None:
        open_tasks, callbacks = await self.pending()
        if open_tasks:
            await self.time_out()
            for row in await self.lease():
                try:
                    await self.poll(row)
                except Exception as exc:  # one task's trouble never stops the others
                    log.warning("polling task %s failed: %s", row.id, type(exc).__name__)
                    await self._reschedule(row, backoff(row.poll_attempts, self.base))
        if callbacks:
            await deliver_due_callbacks(self.gw)

    async def pending(self) -> tuple[bool, bool]:
        """Whether any task is open, and any callback waiting: one read of the two partial indexes, so
        that a process with nothing to poll (most of them, most of the time) asks one question a round."""
        query = select(
            exists().where(text(TASKS_OPEN)).select_from(tasks),
            exists().where(text(TASKS_CALLBACK_DUE)).select_from(tasks),
        )
        async with self.gw.engine.connect() as conn:
            row = (await conn.execute(query)).one()
        return bool(row[0]), bool(row[1])

    # -- leasing -------------------------------------------------------------------------------

    async def lease(self) -> list[Any]:
        now = utc_now()
        due = (
            select(tasks.c.id)
            .where(
                text(TASKS_OPEN),
                tasks.c.upstream_task_id.is_not(None),
                tasks.c.next_poll_at <= now,
                or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
            )
            .order_by(tasks.c.next_poll_at)
            .limit(BATCH)
        )
        if self.gw.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        async with self.gw.engine.begin() as conn:
            result = await conn.execute(
                update(tasks)
                .where(tasks.c.id.in_(due.scalar_subquery()))
                .values(lease_owner=self.gw.instance_id, lease_until=now + LEASE)
                .returning(*tasks.c)
            )
            return list(result.all())

    async def _reschedule(self, row: Any, delay: float, **changes: Any) -> None:
        async with self.gw.engine.begin() as conn:
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == row.id, tasks.c.lease_owner == self.gw.instance_id)
                .values(
                    next_poll_at=utc_now() + timedelta(seconds=delay),
                    poll_attempts=row.poll_attempts + 1,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=utc_now(),
                    **changes,
                )
            )

    # -- polling -------------------------------------------------------------------------------

    async def poll(self, row: Any) -> None:
        route = self._route(row)
        if route is None:
            await self._reschedule(row, MAX_BACKOFF)  # the channel is gone or disabled: try later
            return
        channel, adapter = route
        job = VideoJob.from_dict(orjson.loads(row.job))
        try:
            status, body, retry_after = await fetch(self.gw.http, adapter.build_poll(row.upstream_task_id, job, channel, upstream_model=row.upstream_model))
            if status != 200:
                raise adapter.error(status, body, channel, retry_after)
            result = adapter.parse_poll(body)
        except RateLimited as err:
            wait = float(err.headers.get("Retry-After", MAX_BACKOFF))
            await self._reschedule(row, max(wait, backoff(row.poll_attempts, self.base)))
            return
        except GatewayError as err:
            if err.code == "upstream_task_not_found":  # the upstream no longer knows it: it will never finish
                message = channel.redact(err.message)
                await self.finish(row, TaskUpdate("failed", error={"code": err.code, "message": message}), channel.provider)
            else:
                await self._reschedule(row, backoff(row.poll_attempts, self.base))
            return
        if result.state in TERMINAL_STATES:
            if result.error and isinstance(result.error.get("message"), str):  # the upstream's words, for the client
                result = replace(result, error={**result.error, "message": channel.redact(result.error["message"])})
            await self.finish(row, result, channel.provider)
        else:
            await self._reschedule(row, backoff(row.poll_attempts, self.base), status=result.state)

    def _route(self, row: Any) -> tuple[Any, Any] | None:
        for route in self.gw.directory.routes(row.model):
            adapter = video_adapters().get(route.channel.protocol) if route.channel.id == row.channel_id else None
            if adapter is not None:
                return route.channel, adapter
        return None

    # -- finishing -----------------------------------------------------------------------------

    async def finish(self, row: Any, result: TaskUpdate, provider: str = "") -> None:
        """Settle the hold (and wait for it), then record the end, exactly once."""
        seconds = self._seconds(row, result)
        # the reported duration at the task's price, never more than was held (the requested duration)
        cost = min(cost_of(seconds, row.price_nanos), row.hold_nanos) if result.state == "succeeded" else 0
        self.gw.ledger.settle(
            Settlement(
                request_id=row.id,
                user_id=row.user_id,
                key_id=row.key_id,
                hold=row.hold_nanos,
                cost=cost,
                status="ok" if result.state == "succeeded" else result.state,
                usage=Usage(),
                error=(result.error or {}).get("message") if result.error else None,
                channel_id=row.channel_id,
                upstream_model=row.upstream_model,
            )
        )
        await self.gw.ledger.flush()
        now = utc_now()
        vendor = PROVIDERS.get(provider)
        lifetime = vendor.result_url_lifetime if vendor else None
        async with self.gw.engine.begin() as conn:
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == row.id, text(TASKS_OPEN))
                .values(
                    status=result.state,
                    cost_nanos=cost,
                    duration_seconds=str(seconds) if result.state == "succeeded" else None,
                    video_url=result.video_url,
                    error=orjson.dumps(result.error).decode() if result.error else None,
                    finished_at=now,
                    updated_at=now,
                    expires_at=now + lifetime if lifetime and result.video_url else None,
                    lease_owner=None,
                    lease_until=None,
                    callback_state="pending" if row.callback_url else None,
                    next_callback_at=now if row.callback_url else None,
                )
            )

    @staticmethod
    def _seconds(row: Any, result: TaskUpdate) -> Decimal:
        if result.duration is not None:
            try:
                if result.duration > 0:
                    return Decimal(result.duration)
            except (InvalidOperation, TypeError):
                pass
        return Decimal(orjson.loads(row.job)["duration"])

    async def time_out(self) -> None:
        """Fail and refund what will never finish: too old, or never submitted."""
        now = utc_now()
        async with self.gw.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(tasks).where(
                        text(TASKS_OPEN),
                        or_(
                            tasks.c.created_at < now - self.timeout,
                            and_(tasks.c.upstream_task_id.is_(None), tasks.c.created_at < now - timedelta(minutes=5)),
                        ),
                        or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
                    )
                )
            ).all()
        for row in rows:
            message = "the task did not finish in time" if row.upstream_task_id else "the task was never submitted"
            await self.finish(row, TaskUpdate("failed", error={"code": "timeout", "message": message}))
