"""Task callbacks: when a task ends and the client gave ``callback_url``, POST it the task object.

Signed with the account's webhook secret (``GET /api/v1/key`` shows it):
``X-TokenHub-Timestamp: <unix seconds>`` and
``X-TokenHub-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``. A 2xx answer is a
delivery; anything else is retried with backoff (10 s doubling, 6 attempts), then given up. The
URL goes through the same address policy as fetched images: no loopback, private or metadata
addresses, no redirects.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select, text, update

from tokenhub.errors import GatewayError
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import TASKS_CALLBACK_DUE, tasks, users
from tokenhub.tasks.service import task_view  # the same object GET answers

if TYPE_CHECKING:  # the gateway wires the tasks in: a type only
    from tokenhub.gateway import Gateway

log = logging.getLogger("tokenhub.tasks")

MAX_ATTEMPTS = 6
CLAIM = timedelta(seconds=60)
FIRST_RETRY = 10.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


async def deliver_due_callbacks(gw: Gateway) -> None:
    now = utc_now()
    async with gw.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(tasks, users.c.webhook_secret)
                .join(users, users.c.id == tasks.c.user_id)
                .where(text(TASKS_CALLBACK_DUE), tasks.c.next_callback_at <= now)
                .limit(20)
            )
        ).all()
    for row in rows:
        if not await _claim(gw, row):
            continue  # another process is delivering this one
        body = orjson.dumps(task_view(row))
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-TokenHub-Timestamp": str(stamp),
            "X-TokenHub-Signature": sign(row.webhook_secret or "", stamp, body),
            "X-TokenHub-Task": row.id,
        }
        delivered = False
        try:
            status = await gw.fetcher.post(row.callback_url, body, headers)
            delivered = 200 <= status < 300
        except GatewayError as err:
            log.info("callback for %s not delivered: %s", row.id, err.message)
        await _record(gw, row, delivered)


async def _claim(gw: Gateway, row: Any) -> bool:
    """Take the delivery for a minute; the first process to claim an attempt is the only one to send it."""
    now = utc_now()
    async with gw.engine.begin() as conn:
        result = await conn.execute(
            update(tasks)
            .where(
                tasks.c.id == row.id,
                tasks.c.callback_state == "pending",
                tasks.c.callback_attempts == row.callback_attempts,
                tasks.c.next_callback_at <= now,
            )
            .values(next_callback_at=now + CLAIM)
        )
    return result.rowcount == 1


async def _record(gw: Gateway, row: Any, delivered: bool) -> None:
    attempts = row.callback_attempts + 1
    values: dict[str, Any] = {"callback_attempts": attempts}
    if delivered:
        values.update(callback_state="delivered", next_callback_at=None)
    elif attempts >= MAX_ATTEMPTS:
        values.update(callback_state="failed", next_callback_at=None)
    else:
        values["next_callback_at"] = utc_now() + timedelta(seconds=FIRST_RETRY * 2 ** (attempts - 1))
    async with gw.engine.begin() as conn:
        await conn.execute(update(tasks).where(tasks.c.id == row.id, tasks.c.callback_state == "pending").values(**values))
