"""The ledger writer: holds and settlements, committed in groups.

Every money movement of the request path goes through one ``LedgerWriter`` per process. Callers
queue operations; a single writer task takes everything queued and commits it in **one**
transaction (group commit), so under load a hundred requests share one commit. A store may commit
more than one group at a time (``parallel``: PostgreSQL two, the next group's round trips overlapping
the last one's commit; SQLite one). Per transaction:

1. lock the users and keys involved (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
   ``BEGIN IMMEDIATE`` already holds the database's write lock) and read their balances (on
   PostgreSQL, where this process knows them from its own last commits, lock and check them instead,
   in the write's round trip: ``ledger_store.KnownFigures``);
2. read the state of the requests to settle under the same lock (PostgreSQL locks their rows;
   SQLite's write lock covers them): only a hold still ``held`` resolves, and the write sets it
   ``settled``/``released`` before anyone else can read it, so a hold resolves exactly once, even if
   two parties try;
3. decide each hold in arrival order against the locked balance and the key's limit;
4. write the new balances, key counters, ledger entries and usage records.

A hold is an entry of ``-amount``; its settlement is a release of ``+amount`` and a charge of
``-cost``. So a user's balance is always the sum of their entries, and the spendable balance
already excludes open holds. Holds are admitted atomically against the locked balance, so
concurrent requests — in one process or many — can never overdraw.

A charge never takes a balance below zero nor a key past a limit, whatever the upstream reported:
a cost above what the account can still pay (its balance once the hold is released, its key's total
limit, the spend limits by period the settlement names) is charged up to that bound, and the rest is
recorded as the request's **overage** (``requests.overage_nanos``), logged with the request id and
counted for the operator. With exact holds this only happens when an upstream reports more than the
request could have used.

Durability policy: a hold is committed before anything reaches the client, and in most cases before
the upstream is called. A chat request whose hold this process has every reason to expect admitted
(``covers``: the account's balance and the key's room as this process last saw them cover the hold
twice over, after the holds it has queued; no spend limit by period) goes upstream while its hold
commits, on PostgreSQL (a commit is round trips) and on SQLite when it is the process's only request, and waits for the commit only before its first byte (``Bill.confirmed``): the commit's round
trips overlap the upstream's. Should the hold be refused after all (the account was drained through
another process meanwhile), the upstream call is closed and the client gets the refusal; nothing is
charged and nothing reached the client. A settlement is queued the
moment the response is complete and committed by the next group: at once if a hold is waiting,
otherwise within ``SETTLE_DELAY`` (5 ms), which lets the next request's hold share the commit.
If the process dies in between, the hold stays open and is released by the sweeper (see
``Sweeper``): the customer is not charged for those in-flight requests, and nothing is counted twice.
On PostgreSQL no group waits for the disk; a barrier does, within ``BARRIER_AFTER`` of a settlement's
commit, and settlements whose connection broke before it are settled again (``ledger_store._PG_ASYNC_COMMIT``).
A process that was only paused (or cut off from the database) past the sweep interval finds its holds
released when it comes back; its settlements then charge what was delivered without releasing again
(a *late* settlement), under the same bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Callable, Protocol

from tokenhub.billing.ledger_plan import Charge, GroupPlan, Hold, Op, Settlement, SpendLimitReached
from tokenhub.billing.ledger_store import KnownFigures, store_for
from tokenhub.errors import ServiceUnavailable
from tokenhub.logs import REQUEST_ID_VAR
from tokenhub.money import format_usd
from tokenhub.storage import AsyncEngine
from tokenhub.tokens import Usage

__all__ = ["Charge", "Hold", "LedgerWriter", "Settlement", "SpendLimitReached"]  # the operations callers queue

log = logging.getLogger("tokenhub.ledger")

MAX_BATCH = 256
GATHER_TURNS = 4  # loop turns a group may wait for more operations while they keep arriving
SETTLE_DELAY = 0.005  # seconds a group of only settlements may wait for a hold to share its commit
BARRIER_AFTER = 0.005  # seconds a settlement committed without waiting for the disk waits for a barrier, at most
CLOSE_DEADLINE = 10.0  # seconds close() keeps retrying what storage refuses before it stops anyway


class LedgerStore(Protocol):
    """Runs one group as one transaction (see ``ledger_store``); ``plan_group`` decides what to write."""

    parallel: int  # groups it may commit side by side
    remote: bool  # its commits wait on a server's round trips (which an early hold's upstream call overlaps)
    known: KnownFigures  # what its commits left (``covers`` reads it)
    lost: list[Settlement]  # settlements committed that may have been lost since (to settle again)

    @property
    def unconfirmed(self) -> bool: ...  # settlements committed but not known durable yet: a barrier is due

    def start(self) -> None: ...

    async def commit(self, batch: list[Op]) -> GroupPlan: ...

    async def barrier(self) -> None: ...  # make the settlements committed so far durable

    def is_retryable(self, exc: Exception) -> bool: ...

    def is_refusal(self, exc: Exception) -> bool: ...  # the database refused the data, not a lost connection

    async def close(self) -> None: ...


class LedgerWriter:
    def __init__(self, engine: AsyncEngine, instance_id: str, on_overage: Callable[[Charge], None] | None = None) -> None:
        self._store: LedgerStore = store_for(engine, instance_id)
        self._on_overage = on_overage
        self._queue: list[Op] = []
        self._wakeup = asyncio.Event()
        self._commit_now = asyncio.Event()  # a hold is waiting, or someone flushes
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore  # groups (and barriers) committing side by side: the store's ``parallel``, from start()
        self._barrier_timer: asyncio.TimerHandle | None = None
        self._groups = 0  # groups (and barriers) being committed
        self._group_tasks: set[asyncio.Task[None]] = set()
        self._backoff = 0.05
        self._closing = False
        self._stopped = False
        # What this process's holds not yet committed add up to per account and key: ``covers`` reads them,
        # with what its commits left (``self._store.known``).
        self._pending_users: dict[int, int] = {}
        self._pending_keys: dict[int, int] = {}

    # -- public -----------------------------------------------------------------------------

    def start(self) -> None:
        self._slots = asyncio.Semaphore(self._store.parallel)
        self._store.start()
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def close(self) -> None:
        """Commit everything queued, then stop. If storage keeps refusing for ``CLOSE_DEADLINE`` seconds
        (the database gone), stop anyway: what was not committed stays held, and the next start (or
        another process's sweeper) releases it, as after a crash."""
        self._closing = True
        try:
            await asyncio.wait_for(self.flush(), CLOSE_DEADLINE)
        except asyncio.TimeoutError:
            log.error("ledger: %d operations could not be committed before stopping; their holds stay open until "
                      "the next start releases them", len(self._queue) + self._groups)  # fmt: skip
            for task in [self._task, *self._group_tasks]:
                if task is not None:
                    task.cancel()
        self._stopped = True
        if self._barrier_timer is not None:  # the store's close makes the last settlements durable
            self._barrier_timer.cancel()
        self._wakeup.set()
        if self._task is not None:
            await asyncio.gather(self._task, *self._group_tasks, return_exceptions=True)
        await self._store.close()

    async def hold(self, hold: Hold) -> None:
        """Commit a hold, or raise ``InsufficientCredits`` / ``ServiceUnavailable``."""
        self.queue_hold(hold)
        assert hold.future is not None
        await hold.future

    def queue_hold(self, hold: Hold) -> None:
        """Queue a hold without waiting for its commit: ``hold.future`` resolves once it is committed,
        or fails with its refusal. The caller lets nothing reach the client before it resolves."""
        if self._closing:
            raise ServiceUnavailable("the gateway is shutting down", code="shutting_down")
        hold.future = asyncio.get_running_loop().create_future()
        self._pending_users[hold.user_id] = self._pending_users.get(hold.user_id, 0) + hold.amount
        self._pending_keys[hold.key_id] = self._pending_keys.get(hold.key_id, 0) + hold.amount
        hold.future.add_done_callback(lambda _: self._unpend(hold))
        self._enqueue(hold)

    @property
    def known(self) -> KnownFigures:
        """The figures this process's commits left (and, on PostgreSQL, how often a group checked them)."""
        return self._store.known

    @property
    def remote(self) -> bool:
        """Whether a commit waits on a server's round trips (PostgreSQL), which the upstream call can
        overlap; a local store's commit (SQLite) is this thread's own work."""
        return self._store.remote

    def covers(self, hold: Hold) -> bool:
        """Whether this process expects ``hold`` to be admitted: the account's balance and its key's room,
        as its last commit touching them left them, cover the hold twice over after the holds it has
        queued and not committed yet (the margin is for what other processes spend meanwhile). Unknown
        figures (the account's first request here) and spend limits by period (a query at commit) never are.

        Whether a hold should go early at all is the caller's choice (``remote``)."""
        if hold.budgets:
            return False
        known = self.known
        balance = known.balances.get(hold.user_id)
        key = known.keys.get(hold.key_id)
        if balance is None or key is None:
            return False
        if balance - self._pending_users.get(hold.user_id, 0) < 2 * hold.amount:
            return False
        limit, used, held = key
        return limit is None or limit - used - held - self._pending_keys.get(hold.key_id, 0) >= 2 * hold.amount

    def _unpend(self, hold: Hold) -> None:
        for pending, ident in ((self._pending_users, hold.user_id), (self._pending_keys, hold.key_id)):
            left = pending[ident] - hold.amount
            if left:
                pending[ident] = left
            else:
                del pending[ident]

    def settle(self, settlement: Settlement) -> None:
        """Queue a settlement; it never raises and is committed by the next group."""
        self._enqueue(settlement)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        self._commit_now.set()
        while self._queue or not self._idle.is_set():
            await self._idle.wait()
            if self._queue:
                await asyncio.sleep(0)

    # -- writer -----------------------------------------------------------------------------

    def _enqueue(self, op: Op) -> None:
        self._queue.append(op)
        self._idle.clear()
        self._wakeup.set()
        if isinstance(op, Hold):
            self._commit_now.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        slots = self._slots
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._stopped:
                return
            if not self._commit_now.is_set() and not self._closing:
                # Only settlements are queued: give the next hold a moment to join them, so
                # one commit carries both (at low concurrency this halves the commits).
                timer = loop.call_later(SETTLE_DELAY, self._commit_now.set)
                await self._commit_now.wait()
                timer.cancel()
            self._commit_now.clear()
            await self._gather()
            while self._queue:
                await slots.acquire()  # a store that commits groups side by side (PostgreSQL) has more than one slot
                if not self._queue:
                    slots.release()
                    break
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                self._groups += 1
                if self._store.parallel == 1:  # one at a time anyway: no task to hand the group to
                    await self._group(batch, slots)
                else:
                    task = asyncio.create_task(self._group(batch, slots), name="ledger-group")
                    self._group_tasks.add(task)
                    task.add_done_callback(self._group_tasks.discard)
            if not self._groups:
                self._idle.set()

    async def _gather(self) -> None:
        """Let the operations arriving together join the group: one loop turn, and more (up to
        ``GATHER_TURNS``) while the last one brought new operations. Requests that arrive together
        reach their holds over a few turns (the connection's read, the task's first step, the body);
        committing after the first turn split a burst into a group of one and a group of the rest
        (at c=16 half the groups held a single operation)."""
        seen = -1
        for _ in range(GATHER_TURNS):
            if len(self._queue) == seen:
                return
            seen = len(self._queue)
            await asyncio.sleep(0)

    async def _group(self, batch: list[Op], slots: asyncio.Semaphore) -> None:
        """Commit one group; on storage trouble fail its holds and queue its settlements again."""
        try:
            trouble = await self._commit_group(batch)
            if trouble is None:
                self._backoff = 0.05
                return
            log.error("ledger commit failed (%s); %d operations affected", type(trouble).__name__, len(batch))
            retry: list[Op] = []
            for op in batch:
                if isinstance(op, Hold):
                    if op.future is not None and not op.future.done():
                        op.future.set_exception(ServiceUnavailable("billing storage is unavailable; try again", code="storage_unavailable"))
                else:
                    retry.append(op)
            if retry:
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, 2.0)
                self._queue[:0] = retry
                self._commit_now.set()
                self._wakeup.set()
        finally:
            slots.release()
            self._done()

    async def _commit_group(self, batch: list[Op]) -> Exception | None:
        """Commit one group: None once it is committed, or the storage trouble that stopped it. A group
        the database refuses for one operation's data is committed one by one (``_isolate``).

        (No await inside an ``except`` block, here or anywhere in this module: compiled, one re-raised
        a freed exception; tests/test_compiled.py.)"""
        refused: Exception | None = None
        try:
            await self._commit(batch)
            return None
        except Exception as exc:
            if not self._store.is_refusal(exc):
                return exc
            refused = exc  # one operation's data, not the storage: the rest goes on
        try:
            await self._isolate(batch, refused)
        except Exception as exc:
            return exc
        return None

    def _done(self) -> None:
        """A group or a barrier ended: settle again what may have been lost, and see that a barrier follows
        the settlements committed without waiting for the disk (PostgreSQL: ledger_store._PG_ASYNC_COMMIT)."""
        self._groups -= 1
        store = self._store
        if store.lost:
            lost = store.lost[:]
            store.lost.clear()
            log.warning("ledger: a connection to the database broke; %d settlements not known durable are settled again", len(lost))
            self._queue[:0] = lost
            self._commit_now.set()
            self._wakeup.set()
        if store.unconfirmed and self._barrier_timer is None and not self._stopped:
            self._barrier_timer = asyncio.get_running_loop().call_later(BARRIER_AFTER, self._barrier_due)
        if not self._groups and not self._queue:
            self._idle.set()

    def _barrier_due(self) -> None:
        self._barrier_timer = None
        self._groups += 1
        self._idle.clear()
        task = asyncio.create_task(self._barrier(), name="ledger-barrier")
        self._group_tasks.add(task)
        task.add_done_callback(self._group_tasks.discard)

    async def _barrier(self) -> None:
        try:
            failed = False
            try:
                async with self._slots:
                    await self._store.barrier()
            except Exception as exc:  # the next barrier tries again; a broken connection's settlements are settled again
                log.error("ledger: the barrier that makes settlements durable failed (%s)", type(exc).__name__)
                failed = True
            if failed:
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, 2.0)
        finally:
            self._done()

    async def _isolate(self, batch: list[Op], exc: Exception) -> None:
        """The database refused something in this group (a value it cannot store): commit its operations
        one by one, so that one bad operation never stops the others, nor every group after it (a
        settlement is retried until it is stored). A refused hold fails its request; a refused
        settlement is stored without what it recorded beyond the money (its texts, its channel and
        models, its usage details), and if even that is refused, as a release charging nothing."""
        log.error("ledger: the database refused a group (%s); committing its %d operations one by one", type(exc).__name__, len(batch))
        for op in batch:
            try:
                await self._commit([op])
                continue
            except Exception as refused:
                if not self._store.is_refusal(refused):
                    raise
            if isinstance(op, Hold):
                if op.future is not None and not op.future.done():
                    op.future.set_exception(ServiceUnavailable("billing storage refused this request", code="storage_refused"))
                continue
            for fallback in _plainer(op):
                try:
                    await self._commit([fallback])
                    log.error("ledger: settlement of %s stored as %s (the database refused it as it was)", op.request_id,
                              "a release charging nothing" if fallback.cost == 0 and op.cost else "its money only")
                    break
                except Exception as refused:
                    if not self._store.is_refusal(refused):
                        raise
            else:  # not even the release: the request stays `held`, its hold counted against the balance
                log.error("ledger: settlement of %s refused by the database in every form; its hold stays open", op.request_id)

    async def _commit(self, batch: list[Op]) -> None:
        for attempt in range(5):
            try:
                plan = await self._store.commit(batch)
                break
            except Exception as exc:
                if attempt == 4 or not self._store.is_retryable(exc):
                    raise
            await asyncio.sleep(0.01 * (attempt + 1))
        for hold in plan.new_requests:
            hold.held_on = plan.today  # the day its settlement moves (Settlement.held_on)
        for op, outcome in zip(batch, plan.outcomes):
            if isinstance(op, Hold) and op.future is not None and not op.future.done():
                if outcome is None:
                    op.future.set_result(None)
                else:
                    op.future.set_exception(outcome)
        for charge in plan.settled:
            if charge.overage:
                self._report_overage(charge)

    def _report_overage(self, charge: Charge) -> None:
        token = REQUEST_ID_VAR.set(charge.op.request_id)  # the log line carries the request id
        try:
            log.warning(
                "overage: the usage cost $%s but the account could pay only $%s; $%s recorded as overage, not charged",
                format_usd(charge.op.cost), format_usd(charge.charged), format_usd(charge.overage),
            )
        finally:
            REQUEST_ID_VAR.reset(token)
        if self._on_overage is not None:
            self._on_overage(charge)


def _plainer(op: Settlement) -> list[Settlement]:
    """What is left to store of a settlement the database refused: its money and status alone, then a
    release that charges nothing (the customer is never charged for what could not be recorded)."""
    money_only = dataclasses.replace(
        op, usage=Usage(), finish_reason=None, error=None, prices=None, channel_id=None, upstream_model=None, model=None,
        http_status=None, latency_ms=None, ttfb_ms=None,
    )
    return [money_only, dataclasses.replace(money_only, cost=0, status="error")]
