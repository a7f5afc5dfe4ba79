"""The ledger writer: holds and settlements, committed in groups.

Every money movement of the request path goes through one ``LedgerWriter`` per process. Callers
queue operations; a single writer task takes everything queued and commits it in **one**
transaction (group commit), so under load a hundred requests share one commit. Per transaction:

1. lock the users and keys involved (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
   ``BEGIN IMMEDIATE`` already holds the database's write lock) and read their balances;
2. flip the settled requests from ``held`` to ``settled``/``released`` with one compare-and-swap
   (``UPDATE … WHERE state = 'held' RETURNING id``): a hold resolves exactly once, even if two
   parties try;
3. decide each hold in arrival order against the locked balance and the key's limit;
4. write the new balances, key counters, ledger entries and usage records.

A hold is an entry of ``-amount``; its settlement is a release of ``+amount`` and a charge of
``-cost``. So a user's balance is always the sum of their entries, and the spendable balance
already excludes open holds. Holds are admitted atomically against the locked balance, so
concurrent requests — in one process or many — can never overdraw.

Durability policy: a hold is committed before the upstream is called. A settlement is queued the
moment the response is complete and committed by the next group (typically within milliseconds).
If the process dies in between, the hold stays open and is released by the sweeper (see
``Sweeper``): the customer is not charged for those in-flight requests, and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenhub.billing.cost import Usage
from tokenhub.errors import InsufficientCredits, ServiceUnavailable
from tokenhub.money import format_usd
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import api_keys, ledger_entries, requests, users

log = logging.getLogger("tokenhub.ledger")

MAX_BATCH = 256


@dataclass
class Hold:
    """Reserve ``amount`` for a request before it goes upstream."""

    request_id: str
    user_id: int
    key_id: int
    amount: int
    model: str
    endpoint: str = "chat"
    stream: bool = False
    channel_id: int | None = None
    upstream_model: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    future: asyncio.Future[None] | None = None


@dataclass
class Settlement:
    """Resolve a hold: release it and charge ``cost`` (0 for a failed request)."""

    request_id: str
    user_id: int
    key_id: int
    hold: int
    cost: int
    status: str  # ok | client_closed | upstream_error | truncated | interrupted | error
    usage: Usage = field(default_factory=Usage)
    http_status: int | None = None
    finish_reason: str | None = None
    latency_ms: int | None = None
    ttfb_ms: int | None = None
    error: str | None = None
    prices: str | None = None
    channel_id: int | None = None
    upstream_model: str | None = None


Op = Hold | Settlement


class LedgerWriter:
    def __init__(self, engine: AsyncEngine, instance_id: str) -> None:
        self._engine = engine
        self._instance_id = instance_id
        self._lock_rows = engine.dialect.name != "sqlite"
        self._queue: list[Op] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- public -----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closing = True
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def hold(self, hold: Hold) -> None:
        """Commit a hold, or raise ``InsufficientCredits`` / ``ServiceUnavailable``."""
        if self._closing:
            raise ServiceUnavailable("the gateway is shutting down", code="shutting_down")
        hold.future = asyncio.get_running_loop().create_future()
        self._enqueue(hold)
        await hold.future

    def settle(self, settlement: Settlement) -> None:
        """Queue a settlement; it never raises and is committed by the next group."""
        self._enqueue(settlement)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        while self._queue or not self._idle.is_set():
            await self._idle.wait()
            if self._queue:
                await asyncio.sleep(0)

    # -- writer -----------------------------------------------------------------------------

    def _enqueue(self, op: Op) -> None:
        self._queue.append(op)
        self._idle.clear()
        self._wakeup.set()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                try:
                    await self._commit(batch)
                    backoff = 0.05
                except Exception as exc:  # storage trouble: fail holds, keep settlements
                    log.error("ledger commit failed (%s); %d operations affected", type(exc).__name__, len(batch))
                    retry: list[Op] = []
                    for op in batch:
                        if isinstance(op, Hold):
                            if op.future is not None and not op.future.done():
                                op.future.set_exception(
                                    ServiceUnavailable("billing storage is unavailable; try again", code="storage_unavailable")
                                )
                        else:
                            retry.append(op)
                    self._queue[:0] = retry
                    if retry:
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 2.0)
            self._idle.set()

    async def _commit(self, batch: list[Op]) -> None:
        for attempt in range(5):
            try:
                outcomes = await self._transaction(batch)
                break
            except DBAPIError as exc:
                if attempt < 4 and _is_retryable(exc):
                    await asyncio.sleep(0.01 * (attempt + 1))
                    continue
                raise
        for op, outcome in zip(batch, outcomes):
            if isinstance(op, Hold) and op.future is not None and not op.future.done():
                if outcome is None:
                    op.future.set_result(None)
                else:
                    op.future.set_exception(outcome)

    async def _transaction(self, batch: list[Op]) -> list[Exception | None]:
        now = utc_now()
        user_ids = sorted({op.user_id for op in batch})
        key_ids = sorted({op.key_id for op in batch})
        settlements = [op for op in batch if isinstance(op, Settlement)]
        async with self._engine.begin() as conn:
            user_q = select(users.c.id, users.c.balance).where(users.c.id.in_(user_ids)).order_by(users.c.id)
            key_q = (
                select(api_keys.c.id, api_keys.c.limit_nanos, api_keys.c.used_nanos, api_keys.c.held_nanos)
                .where(api_keys.c.id.in_(key_ids))
                .order_by(api_keys.c.id)
            )
            if self._lock_rows:
                user_q = user_q.with_for_update()
                key_q = key_q.with_for_update()
            balance = {row.id: row.balance for row in await conn.execute(user_q)}
            keys = {row.id: [row.limit_nanos, row.used_nanos, row.held_nanos] for row in await conn.execute(key_q)}

            settling: set[str] = set()
            if settlements:
                result = await conn.execute(
                    update(requests)
                    .where(requests.c.id.in_([s.request_id for s in settlements]), requests.c.state == "held")
                    .values(state="settling")
                    .returning(requests.c.id)
                )
                settling = {row[0] for row in result}

            outcomes: list[Exception | None] = []
            entries: list[dict[str, Any]] = []
            new_requests: list[dict[str, Any]] = []
            settled_rows: list[dict[str, Any]] = []
            for op in batch:
                if isinstance(op, Hold):
                    refusal = _refuse(op, balance.get(op.user_id), keys.get(op.key_id))
                    outcomes.append(refusal)
                    if refusal is not None:
                        continue
                    balance[op.user_id] -= op.amount
                    keys[op.key_id][2] += op.amount
                    if op.amount:
                        entries.append(_entry(op.user_id, "hold", -op.amount, balance[op.user_id], op.request_id, now))
                    new_requests.append(_request_row(op, self._instance_id))
                else:
                    outcomes.append(None)
                    if op.request_id not in settling:
                        continue  # already resolved (by another party, or earlier in this batch): never twice
                    settling.discard(op.request_id)
                    balance[op.user_id] += op.hold
                    if op.hold:
                        entries.append(_entry(op.user_id, "release", op.hold, balance[op.user_id], op.request_id, now))
                    balance[op.user_id] -= op.cost
                    if op.cost:
                        entries.append(_entry(op.user_id, "charge", -op.cost, balance[op.user_id], op.request_id, now))
                    key = keys[op.key_id]
                    key[1] += op.cost
                    key[2] -= op.hold
                    settled_rows.append(_settled_row(op, now))

            if new_requests:
                await conn.execute(insert(requests), new_requests)
            if settled_rows:
                await conn.execute(_SETTLE_REQUEST, settled_rows)
            if entries:
                await conn.execute(insert(ledger_entries), entries)
            await conn.execute(_SET_BALANCE, [{"uid": uid, "bal": bal} for uid, bal in balance.items()])
            await conn.execute(
                _SET_KEY_COUNTERS, [{"kid": kid, "used": k[1], "held": k[2]} for kid, k in keys.items()]
            )
        return outcomes


_SET_BALANCE = update(users).where(users.c.id == bindparam("uid")).values(balance=bindparam("bal"))
_SET_KEY_COUNTERS = (
    update(api_keys)
    .where(api_keys.c.id == bindparam("kid"))
    .values(used_nanos=bindparam("used"), held_nanos=bindparam("held"))
)
_SETTLE_REQUEST = (
    update(requests)
    .where(requests.c.id == bindparam("rid"))
    .values(
        state=bindparam("new_state"),
        status=bindparam("new_status"),
        http_status=bindparam("new_http_status"),
        cost_nanos=bindparam("cost"),
        prompt_tokens=bindparam("pt"),
        completion_tokens=bindparam("ct"),
        cached_tokens=bindparam("cached"),
        cache_write_tokens=bindparam("cache_write"),
        reasoning_tokens=bindparam("reasoning"),
        estimated=bindparam("est"),
        finish_reason=bindparam("finish"),
        latency_ms=bindparam("latency"),
        ttfb_ms=bindparam("ttfb"),
        error=bindparam("err"),
        prices=bindparam("price_json"),
        channel_id=bindparam("chan"),
        upstream_model=bindparam("up_model"),
        settled_at=bindparam("at"),
    )
)


def _refuse(op: Hold, balance: int | None, key: list[Any] | None) -> Exception | None:
    if balance is None or key is None:
        return InsufficientCredits("the account or key no longer exists", code="account_missing")
    if balance < op.amount:
        return InsufficientCredits(
            f"Insufficient credits: this request may cost up to ${format_usd(op.amount)} "
            f"and the balance is ${format_usd(max(balance, 0))}. Add credits or lower max_tokens.",
            code="insufficient_credits",
        )
    limit, used, held = key
    if limit is not None and used + held + op.amount > limit:
        return InsufficientCredits(
            f"This key's spending limit (${format_usd(limit)}) would be exceeded: ${format_usd(used)} used, "
            f"${format_usd(held)} reserved by requests in flight, and this request may cost up to ${format_usd(op.amount)}.",
            code="key_limit_reached",
        )
    return None


def _entry(user_id: int, kind: str, amount: int, balance_after: int, request_id: str, now: datetime) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "kind": kind,
        "amount": amount,
        "balance_after": balance_after,
        "request_id": request_id,
        "note": None,
        "created_at": now,
    }


def _request_row(op: Hold, instance_id: str) -> dict[str, Any]:
    return {
        "id": op.request_id,
        "user_id": op.user_id,
        "key_id": op.key_id,
        "model": op.model,
        "channel_id": op.channel_id,
        "upstream_model": op.upstream_model,
        "endpoint": op.endpoint,
        "stream": op.stream,
        "state": "held",
        "hold_nanos": op.amount,
        "cost_nanos": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "estimated": False,
        "instance_id": instance_id,
        "created_at": op.created_at,
    }


def _settled_row(op: Settlement, now: datetime) -> dict[str, Any]:
    u = op.usage
    return {
        "rid": op.request_id,
        "new_state": "settled" if op.cost else "released",
        "new_status": op.status,
        "new_http_status": op.http_status,
        "cost": op.cost,
        "pt": u.prompt_tokens,
        "ct": u.completion_tokens,
        "cached": u.cached_tokens,
        "cache_write": u.cache_write_tokens,
        "reasoning": u.reasoning_tokens,
        "est": u.estimated,
        "finish": op.finish_reason,
        "latency": op.latency_ms,
        "ttfb": op.ttfb_ms,
        "err": op.error,
        "price_json": op.prices,
        "chan": op.channel_id,
        "up_model": op.upstream_model,
        "at": now,
    }


def _is_retryable(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return "deadlock" in text or "database is locked" in text or "could not serialize" in text
