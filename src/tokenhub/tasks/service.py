"""Video tasks: create (hold, store, submit), read (owner only), and the public task object.

Create order, so that nothing is lost on any exit:
1. hold the price of the requested duration (402 if it cannot be covered);
2. store the task (status ``queued``, no upstream id yet) — the hold and the task share its id;
3. submit upstream; on success record the upstream id, on failure mark the task failed and release
   the hold, and answer with the error. A crash between 2 and 3 leaves a task without an upstream
   id, which the poller's timeout sweep fails and refunds.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row

from tokenhub.billing.bill import Bill
from tokenhub.billing.ledger import Hold
from tokenhub.catalog.model import Model
from tokenhub.directory import KeyInfo
from tokenhub.errors import GatewayError, NotFound
from tokenhub.money import format_usd
from tokenhub.providers.base import redacted
from tokenhub.providers.media.base import VideoAdapter, VideoJob
from tokenhub.providers.upstream_http import fetch
from tokenhub.storage.engine import as_utc, utc_now
from tokenhub.storage.tables import tasks, users
from tokenhub.upstream import Route

if TYPE_CHECKING:  # the gateway wires the tasks in: a type only
    from tokenhub.gateway import Gateway



def new_task_id() -> str:
    return "tsk-" + secrets.token_urlsafe(18)


def cost_of(seconds: Decimal, price_per_second: int) -> int:
    """Nanos for a duration, rounded half up once (the ledger's rule)."""
    return int((seconds * price_per_second).to_integral_value(rounding=ROUND_HALF_UP))


async def create_task(
    gw: Gateway, key: KeyInfo, model: Model, route: Route, adapter: VideoAdapter, job: VideoJob, price: int, callback_url: str | None
) -> dict[str, Any]:
    """Hold the job's price, store the task, submit it; from then on the hold is the poller's to settle.

    A failure releases the hold first (committed before the error leaves), then marks the task failed,
    so a crash in between leaves nothing held for a task nobody polls."""
    task_id = new_task_id()
    hold = Hold(task_id, key.user_id, key.id, job.duration * price, model.id, endpoint="video",
                channel_id=route.channel.id, upstream_model=route.upstream_id, budgets=key.budgets)  # fmt: skip
    stored = False
    try:
        async with Bill(gw.ledger, hold, durable=True) as bill:
            try:
                await _store(gw, task_id, key, model, route, job, price, hold.amount, callback_url)
            except Exception:
                bill.error = "the task could not be stored"
                raise
            stored = True
            try:
                status, body, retry_after = await fetch(gw.http, adapter.build_submit(job, route.upstream_id, route.channel))
                if status not in (200, 201, 202):
                    raise adapter.error(status, body, route.channel, retry_after)
                upstream_id = adapter.parse_submit(body)
            except GatewayError as err:
                redacted(err, route.channel)
                bill.status, bill.error = "upstream_error", err.message
                raise
            bill.hand_over()  # the poller settles it when the task ends, exactly once
    except GatewayError as err:
        if stored:
            await _mark_failed(gw, task_id, {"code": err.code, "message": err.message})
        raise
    async with gw.engine.begin() as conn:
        await conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id)
            .values(
                upstream_task_id=upstream_id,
                next_poll_at=utc_now() + timedelta(seconds=gw.settings.task_poll_base),
                updated_at=utc_now(),
            )
        )
        row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).one()
    return task_view(row)


async def _store(
    gw: Gateway, task_id: str, key: KeyInfo, model: Model, route: Route, job: VideoJob, price: int, hold: int, callback_url: str | None
) -> None:
    now = utc_now()
    async with gw.engine.begin() as conn:
        if callback_url:
            await ensure_webhook_secret(conn, key.user_id)
        await conn.execute(
            insert(tasks).values(
                id=task_id, user_id=key.user_id, key_id=key.id, model=model.id, channel_id=route.channel.id,
                upstream_model=route.upstream_id, status="queued", job=orjson.dumps(job.to_dict()).decode(),
                price_nanos=price, hold_nanos=hold, cost_nanos=0, callback_url=callback_url,
                callback_attempts=0, poll_attempts=0, created_at=now, updated_at=now,
            )
        )  # fmt: skip


async def _mark_failed(gw: Gateway, task_id: str, error: dict[str, Any]) -> None:
    async with gw.engine.begin() as conn:
        now = utc_now()
        await conn.execute(
            update(tasks)
            .where(tasks.c.id == task_id)
            .values(status="failed", error=orjson.dumps(error).decode(), finished_at=now, updated_at=now)
        )


async def ensure_webhook_secret(conn: Any, user_id: int) -> str:
    secret = await conn.scalar(select(users.c.webhook_secret).where(users.c.id == user_id))
    if not secret:
        secret = secrets.token_hex(32)
        await conn.execute(update(users).where(users.c.id == user_id, users.c.webhook_secret.is_(None)).values(webhook_secret=secret))
        secret = await conn.scalar(select(users.c.webhook_secret).where(users.c.id == user_id))
    return str(secret)


async def get_task(gw: Gateway, key: KeyInfo, task_id: str) -> dict[str, Any]:
    async with gw.engine.connect() as conn:
        row = (await conn.execute(select(tasks).where(tasks.c.id == task_id[:40], tasks.c.user_id == key.user_id))).first()
    if row is None:
        raise NotFound(f"no video task {task_id[:40]}", code="task_not_found", param="id")
    return task_view(row)


async def list_tasks(gw: Gateway, key: KeyInfo, *, limit: int, before: str | None) -> dict[str, Any]:
    async with gw.engine.connect() as conn:
        query = select(tasks).where(tasks.c.user_id == key.user_id)
        if before:
            anchor = (await conn.execute(select(tasks.c.created_at, tasks.c.id).where(tasks.c.id == before, tasks.c.user_id == key.user_id))).first()
            if anchor is None:
                raise NotFound(f"no video task {before[:40]}", code="task_not_found", param="before")
            query = query.where((tasks.c.created_at < anchor.created_at) | ((tasks.c.created_at == anchor.created_at) & (tasks.c.id < anchor.id)))
        rows = (await conn.execute(query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit + 1))).all()
        total = await conn.scalar(select(func.count()).select_from(tasks).where(tasks.c.user_id == key.user_id))
    return {
        "object": "list",
        "data": [task_view(r) for r in rows[:limit]],
        "has_more": len(rows) > limit,
        "total": int(total or 0),
    }


def _unix(value: datetime | None) -> int | None:
    value = as_utc(value)
    return int(value.timestamp()) if value else None


def task_view(row: Row[Any]) -> dict[str, Any]:
    """The public task object (create and get answer the same shape)."""
    seconds = row.duration_seconds
    return {
        "id": row.id,
        "object": "video.generation.task",
        "model": row.model,
        "status": row.status,
        "created_at": _unix(row.created_at),
        "finished_at": _unix(row.finished_at),
        "data": [{"video_url": row.video_url}] if row.video_url else [],
        "expires_at": _unix(row.expires_at),
        "error": orjson.loads(row.error) if row.error else None,
        "usage": {
            "duration_seconds": orjson.Fragment(seconds.encode()) if seconds else None,
            "cost": orjson.Fragment(format_usd(row.cost_nanos).encode()),
        },
    }
