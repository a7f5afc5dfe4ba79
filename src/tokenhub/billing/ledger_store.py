"""The ledger writer's transactions, in plain SQL on the raw drivers.

This is the one place on the hot path that talks to storage, so it skips the ORM layer: the
SQL below is written once, and each database runs it the cheapest way it can —

* **SQLite**: a dedicated ``sqlite3`` connection, used inline on the event loop while the write lock
  is free and otherwise in one worker thread; a whole group is one call (one hand-off per group, not
  several per statement). Checkpoints run beside the commits (see ``SqliteLedgerStore.checkpoint``).
* **PostgreSQL**: two dedicated ``asyncpg`` connections, so two groups can be in flight (the next
  group's round trips overlap the last one's commit), and two round trips per group: one locking
  read (``FOR UPDATE``: users and keys in id order, so groups and processes sharing the database
  lock in the same order, then the requests to settle); one statement carrying every write, its
  rows as JSON, sent with the COMMIT and the BEGIN of the connection's next group (an open
  transaction that has run no statement holds no lock and no snapshot). A group on figures this
  process already knows (``KnownFigures``) skips the read: one round trip, its write behind a check
  that locks the same rows and finds them as expected, or else stops the query. Commits do not wait
  for the disk; a barrier after the settlements does (``_PG_ASYNC_COMMIT``).

Both run the same steps (see ``ledger.py``): lock and read the balances, key counters and the
state of the requests to settle, let ``plan_group`` decide, write. The tables
are those of ``storage/tables.py`` (the SQLAlchemy schema that Alembic creates); the column lists
here must follow it, and the tests read everything back through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

from tokenhub.billing.ledger_plan import (
    Charge,
    GroupPlan,
    Hold,
    KeyFigures,
    Op,
    Settlement,
    SpendKey,
    figures_after,
    plan_group,
    spend_scopes,
    spend_since,
    spent_in_periods,
)
from tokenhub.periodic import Periodic
from tokenhub.storage import AsyncEngine
from tokenhub.storage.engine import utc_now

if TYPE_CHECKING:  # the driver loads only for a PostgreSQL store
    import asyncpg

log = logging.getLogger("tokenhub.ledger")

# A new request row: what a hold writes. Its own values (_HOLD_COLUMNS), what every hold starts with
# (_HELD), the process that holds it and when.
_HOLD_COLUMNS: Final = ("id", "user_id", "key_id", "model", "channel_id", "upstream_model", "endpoint", "stream", "hold_nanos")
_HELD: Final = {
    "state": "held", "cost_nanos": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
    "cache_write_tokens": 0, "reasoning_tokens": 0, "estimated": False,
}  # fmt: skip
_REQUEST_COLUMNS: Final = (*_HOLD_COLUMNS, *_HELD, "instance_id", "created_at")
# What a settlement writes on its request row (and settled_at). It keeps what the request recorded
# where it knows nothing better (_KEPT: the sweeper's release does not know the channel).
_SETTLE_COLUMNS: Final = (
    "state", "status", "http_status", "cost_nanos", "overage_nanos", "prompt_tokens", "completion_tokens",
    "cached_tokens", "cache_write_tokens", "reasoning_tokens", "estimated", "finish_reason", "latency_ms", "ttfb_ms",
    "error", "prices", "channel_id", "upstream_model", "model", "tool_uses",
)  # fmt: skip
_KEPT: Final = frozenset(("prices", "channel_id", "upstream_model", "model"))


def _null(value: None) -> None:
    return None


# sqlite3 binds an exact int, float or str as it is and looks any other value up as an adapter first; with
# none registered it tries the protocol's ``__adapt__`` (an AttributeError formatted and dropped) and the
# value's ``__conform__``: ~2.5 k instructions for each bool and None a group binds (six a request, 1.1 % of a
# whole answer's). These two bind exactly what sqlite3 binds without them, a bool as its int and None as
# NULL, from the registry's first lookup. Process-wide, as the registry is (SQLAlchemy's connections too).
sqlite3.register_adapter(bool, int)
sqlite3.register_adapter(type(None), _null)


def _settle_set(new: str, old: str) -> str:
    """The SET list of a settlement: ``new`` spells a new value (``?``, ``s.{}``), ``old`` the row's."""
    return ", ".join(
        f"{c} = COALESCE({new.format(c)}, {old.format(c)})" if c in _KEPT else f"{c} = {new.format(c)}" for c in _SETTLE_COLUMNS
    )


# The state of the requests a group settles, read under the lock (SQLite's write lock, held from BEGIN
# IMMEDIATE; PostgreSQL's row locks, _PG_LOCK): no other transaction can resolve them before this one's write.
_SQLITE_SETTLING: Final = "SELECT id, created_at, state, status FROM requests WHERE id IN ({})"
_SQLITE_INSERT_REQUEST: Final = f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) VALUES ({', '.join('?' for _ in _REQUEST_COLUMNS)})"
_SQLITE_SETTLE: Final = f"UPDATE requests SET {_settle_set('?', '{}')}, settled_at = ? WHERE id = ?"
# A key's or account's rows of spend_by_period that its budgets are checked against: its days since the
# first of the earliest period (at most a month and a week of them), and its total.
_SPENT: Final = """
SELECT period, start, amount FROM spend_by_period WHERE scope = {0} AND ident = {1} AND period = 'day' AND start >= {2}
UNION ALL SELECT period, start, amount FROM spend_by_period WHERE scope = {3} AND ident = {4} AND period = 'total'
"""
_SQLITE_SPENT: Final = _SPENT.format("?", "?", "?", "?", "?")
_SQLITE_SPEND: Final = (
    "INSERT INTO spend_by_period (scope, ident, period, start, amount) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (scope, ident, period, start) DO UPDATE SET amount = amount + excluded.amount"
)


def _hold_values(op: Hold) -> tuple[Any, ...]:
    """The values of ``_HOLD_COLUMNS``, in their order."""
    return op.request_id, op.user_id, op.key_id, op.model, op.channel_id, op.upstream_model, op.endpoint, op.stream, op.amount


def _request_values(op: Hold, instance_id: str, created_at: Any) -> tuple[Any, ...]:
    return (*_hold_values(op), *_HELD.values(), instance_id, created_at)


def _settle_values(charge: Charge) -> tuple[Any, ...]:
    """The values of ``_SETTLE_COLUMNS``, in their order."""
    op, u = charge.op, charge.op.usage
    return (
        "settled" if charge.charged else "released", op.status, op.http_status, charge.charged, charge.overage,
        u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_write_tokens, u.reasoning_tokens, u.estimated,
        _text(op.finish_reason, 32), op.latency_ms, op.ttfb_ms, _text(op.error), op.prices, op.channel_id,
        _text(op.upstream_model, 200), _text(op.model, 200), orjson.dumps(u.tool_uses).decode() if u.tool_uses else None,
    )  # fmt: skip


def _text(value: str | None, limit: int | None = None) -> str | None:
    """Text that came from outside (an upstream's finish reason or error, a configured model name),
    storable: without U+0000, which PostgreSQL's text cannot hold, and within its column's length,
    which PostgreSQL enforces. One settlement the database refuses would fail every group it joined
    (the writer retries settlements until they are stored); SQLite stores the same."""
    if value and "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit] if value and limit and len(value) > limit else value


def _resolvable(rows: Any, late_ids: list[str]) -> dict[str, tuple[date | None, bool]]:
    """Of the requests to settle, read as (id, created_at, state, status) under the lock, those a settlement
    may resolve, with the UTC day they were created and whether the settlement is late: a hold still open,
    or (for settlements that may be late) one the sweeper released. A hold resolves exactly once."""
    out: dict[str, tuple[date | None, bool]] = {}
    for rid, created_at, state, status in rows:
        if state == "held":
            out[rid] = (_day(created_at), False)
        elif state == "released" and status == "interrupted" and rid in late_ids:
            out[rid] = (_day(created_at), True)
    return out


def _day(created_at: Any) -> date:
    """The UTC day of a created_at as the driver reads it: SQLite's text (naive UTC), asyncpg's datetime (UTC)."""
    if isinstance(created_at, str):
        return date.fromisoformat(created_at[:10])
    return created_at.date()


def _ids(batch: list[Op]) -> tuple[list[int], list[int], list[str], list[str]]:
    """Users and keys involved, the requests to settle, and those of them that may settle late."""
    user_ids = sorted({op.user_id for op in batch})
    key_ids = sorted({op.key_id for op in batch})
    settle_ids = [op.request_id for op in batch if isinstance(op, Settlement)]
    late_ids = [op.request_id for op in batch if isinstance(op, Settlement) and not op.release_only]
    return user_ids, key_ids, settle_ids, late_ids


KNOWN_SIZE: Final = 100_000  # accounts and keys whose figures a store keeps (KnownFigures)
DOUBT_MAX: Final = 1024  # groups an account whose check keeps failing waits, at most, before it is expected again


class KnownFigures:
    """The figures this process's own commits left: each account's balance and each key's (limit, used,
    held). The writer reads them to expect a hold admitted (``LedgerWriter.covers``).

    On PostgreSQL a group whose accounts and keys are all known here, and which needs no spend by
    period, commits in **one** round trip: planned on these figures and, when that admits every hold and
    makes every charge whole, sent with checks (_PG_EXPECT_FUNCTIONS) that lock the same rows in the
    same order as the locking read and find the room those decisions need. Other processes' commits
    to a shared account change its figures without failing the check while the room is there: what is
    known here is then this process's view, which its own commits move and a locking read corrects (the
    margin ``covers`` keeps is for what it does not see). Without the room (an account or key near its
    end, a refund, the sweeper) the check fails, nothing is written, and the group locks and reads as
    usual: every refusal and cut is decided on the figures as locked. An account that fails it is not
    expected for its next group, then for 2, 4 … up to ``DOUBT_MAX`` (halved by each pass)."""

    def __init__(self) -> None:
        self.balances: dict[int, int] = {}
        self.keys: dict[int, KeyFigures] = {}
        self._unsure_users: dict[int, int] = {}  # accounts and keys of groups locking and reading right now
        self._unsure_keys: dict[int, int] = {}
        self._doubt: dict[int, tuple[int, int]] = {}  # account -> (groups left that lock and read, the next wait)
        self.hits = 0
        self.misses = 0

    def expected(self, batch: list[Op], user_ids: list[int], key_ids: list[int]) -> tuple[dict[int, int], dict[int, KeyFigures]] | None:
        """The figures to plan ``batch`` on, or None: it locks and reads them."""
        if spend_scopes(batch):  # spend by period is read at commit
            return None
        if any(isinstance(op, Settlement) and op.held_on is None for op in batch):  # its request's day is read with it
            return None
        if any(u in self._unsure_users for u in user_ids) or any(k in self._unsure_keys for k in key_ids):
            return None
        try:
            balances = {u: self.balances[u] for u in user_ids}
            keys = {k: self.keys[k] for k in key_ids}
        except KeyError:
            return None
        doubted = False
        for u in user_ids:
            doubt = self._doubt.get(u)
            if doubt is not None and doubt[0] > 0:
                self._doubt[u] = (doubt[0] - 1, doubt[1])
                doubted = True
        return None if doubted else (balances, keys)

    def hit(self, user_ids: list[int], plan: GroupPlan) -> None:
        self.hits += 1
        for u in user_ids:
            doubt = self._doubt.get(u)
            if doubt is not None:
                if doubt[1] > 1:
                    self._doubt[u] = (0, doubt[1] // 2)
                else:
                    del self._doubt[u]
        self.saw(plan)

    def missed(self, user_ids: list[int]) -> None:
        self.misses += 1
        for u in user_ids:
            wait = min(2 * self._doubt.get(u, (0, 0))[1] or 1, DOUBT_MAX)
            self._doubt[u] = (wait, wait)

    def unsure(self, user_ids: list[int], key_ids: list[int], step: int) -> None:
        for counts, ids in ((self._unsure_users, user_ids), (self._unsure_keys, key_ids)):
            for i in ids:
                n = counts.get(i, 0) + step
                if n:
                    counts[i] = n
                else:
                    del counts[i]

    def saw(self, plan: GroupPlan) -> None:
        """Remember what a committed group left."""
        if len(self.balances) > KNOWN_SIZE or len(self.keys) > KNOWN_SIZE or len(self._doubt) > KNOWN_SIZE:
            self.balances.clear()
            self.keys.clear()
            self._doubt.clear()
        balances, keys = figures_after(plan)
        self.balances.update(balances)
        self.keys.update(keys)


WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024  # bytes the write-ahead log file keeps once it starts over
CATCH_UP_WAIT_MS: Final = 200  # the longest the group after a checkpoint waits for others to let the log start over
CHECKPOINT_TRIES: Final = 5  # a passive checkpoint that met a commit mid-way through its header tries again, so often


class SqliteLedgerStore:
    parallel = 1  # one writer: SQLite's write lock
    remote = False  # a commit is this thread's own work (or a wait for another process's lock)
    unconfirmed = False  # a commit returns once it is durable (or as durable as the file system makes it)
    catch_up_bytes = WAL_SIZE_LIMIT  # the log's length from which the group after a checkpoint makes it start over

    def __init__(self, path: str, instance_id: str) -> None:
        self._path = path
        self._instance_id = instance_id
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        self._db: sqlite3.Connection | None = None
        self._commits_since_checkpoint = 0
        self._catch_up = False  # a checkpoint ran beside the commits: the next group finishes it first
        self._checkpoints = Periodic("ledger checkpoint", 1.0, self.checkpoint)
        self.known = KnownFigures()
        self.lost: list[Settlement] = []  # never: see PostgresLedgerStore

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
            # busy_timeout 0: the inline attempt must never wait; wal_autocheckpoint 0: checkpoints
            # (which fsync) run in the worker thread, not inside a commit on the event loop.
            pragmas = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=0", "wal_autocheckpoint=0",
                       f"journal_size_limit={WAL_SIZE_LIMIT}", "foreign_keys=ON")  # fmt: skip
            for pragma in pragmas:
                db.execute(f"PRAGMA {pragma}")
            self._db = db
        return self._db

    async def commit(self, batch: list[Op]) -> GroupPlan:
        """Inline on the event loop when the write lock is free (a group takes ~0.1 ms, less than
        a thread hand-off); in the worker thread, waiting for the lock, when another connection
        (a CLI command, another process) holds it, or after a checkpoint (``checkpoint``)."""
        plan: GroupPlan | None = None
        if self._catch_up:
            self._catch_up = False
            plan = await asyncio.get_running_loop().run_in_executor(self._executor, self._caught_up_transaction, batch)
        else:
            try:
                plan = self._transaction(batch, wait=False)
            except _LockBusy:
                pass  # (awaited below: no await inside an except block in this module, tests/test_compiled.py)
            if plan is None:
                plan = await asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, batch, True)
        self.known.saw(plan)
        return plan

    def start(self) -> None:
        self._checkpoints.start()

    async def barrier(self) -> None:
        pass

    async def checkpoint(self) -> None:
        """Copy the write-ahead log into the database; once the log is long, make it start over.

        SQLite writes the log from its start again only when a transaction begins with every frame
        already copied. A checkpoint running beside a stream of commits never sees that moment (each
        commit appends while it copies), and the log grew without end under steady load (a gigabyte in
        45 s of the benchmark). So the bulk is copied in the worker thread while groups go on
        committing (it fsyncs; the event loop never waits for it); when the log has grown past
        ``WAL_SIZE_LIMIT``, the next group, in that thread, first copies the few frames written
        meanwhile with a RESTART checkpoint, which holds off every writer, other processes' too,
        until the log is whole in the database, then begins: the log starts over and the file is cut
        back to that size. That group waits for two small fsyncs (~5 ms here), so it happens only when
        the log is long, every few seconds at the most; under a light load the log starts over by
        itself (no commit runs beside the copy)."""
        if self._commits_since_checkpoint:
            self._commits_since_checkpoint = 0
            log_bytes = await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint_now)
            self._catch_up = log_bytes >= self.catch_up_bytes

    def _checkpoint_now(self) -> int:
        """A passive checkpoint; the log's length in bytes (0 if it could not run).

        A passive checkpoint never waits: one that reads the log's header while a commit is writing
        it (two copies, compared) gives up as busy without copying anything (three in a thousand
        beside a steady stream of commits, measured). That race lasts microseconds, so it tries
        again at once rather than leave the log to grow until the next checkpoint."""
        with sqlite3.connect(self._path, timeout=30) as db:
            frames = -1
            for attempt in range(CHECKPOINT_TRIES):
                if attempt:
                    time.sleep(0.001)
                frames = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]  # -1: busy, nothing done
                if frames >= 0:
                    break
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.close()
        return max(frames, 0) * page_size

    def _caught_up_transaction(self, batch: list[Op]) -> GroupPlan:
        db = self._connect()
        # RESTART: copy what is left, holding off other writers (other processes too) for as long, so
        # the log is whole in the database when the next transaction begins; given up after a moment
        # if a reader or writer keeps it busy (the next checkpoint tries again).
        db.execute(f"PRAGMA busy_timeout={CATCH_UP_WAIT_MS}")
        try:
            db.execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            db.execute("PRAGMA busy_timeout=0")
        return self._transaction(batch, wait=True)

    def is_retryable(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def is_refusal(self, exc: Exception) -> bool:
        """A value SQLite or the driver cannot take (an integer beyond 64 bits, a constraint), not trouble with the file."""
        return isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError, OverflowError))

    async def close(self) -> None:
        await self._checkpoints.stop()

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._commits_since_checkpoint:
                self._checkpoint_now()

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)

    def _transaction(self, batch: list[Op], wait: bool) -> GroupPlan:
        db = self._connect()
        user_ids, key_ids, settle_ids, late_ids = _ids(batch)
        now = utc_now()
        if wait:
            db.execute("PRAGMA busy_timeout=30000")
            try:
                db.execute("BEGIN IMMEDIATE")
            finally:
                db.execute("PRAGMA busy_timeout=0")
        else:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise _LockBusy from None
                raise
        try:
            balances = dict(db.execute(f"SELECT id, balance FROM users WHERE id IN ({_marks(user_ids)})", user_ids).fetchall())
            keys: dict[int, KeyFigures] = {}
            owners: dict[int, int] = {}
            for row in db.execute(
                f"SELECT id, limit_nanos, used_nanos, held_nanos, user_id FROM api_keys WHERE id IN ({_marks(key_ids)})", key_ids
            ):
                keys[row[0]] = (row[1], row[2], row[3])
                owners[row[0]] = row[4]
            today = now.date()
            spent: dict[SpendKey, int] = {}
            for (scope, ident), periods in spend_scopes(batch).items():
                rows = db.execute(_SQLITE_SPENT, (scope, ident, spend_since(periods, today), scope, ident)).fetchall()
                for period, amount in spent_in_periods(periods, rows, today).items():
                    spent[(scope, ident, period)] = amount
            settling: dict[str, tuple[date | None, bool]] = {}
            if settle_ids:
                settling = _resolvable(db.execute(_SQLITE_SETTLING.format(_marks(settle_ids)), settle_ids), late_ids)
            plan = plan_group(batch, balances, keys, settling, today, spent, owners)
            stamp = _sqlite_time(now)
            if plan.new_requests:
                db.executemany(_SQLITE_INSERT_REQUEST, [_request_values(op, self._instance_id, stamp) for op in plan.new_requests])
            if plan.settled:
                db.executemany(_SQLITE_SETTLE, [(*_settle_values(c), stamp, c.op.request_id) for c in plan.settled])
            if plan.entries:
                db.executemany(
                    "INSERT INTO ledger_entries (user_id, kind, amount, balance_after, request_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [(e["user_id"], e["kind"], e["amount"], e["balance_after"], e["request_id"], stamp) for e in plan.entries],
                )
            db.executemany("UPDATE users SET balance = ? WHERE id = ?", [(bal, uid) for uid, bal in plan.balances.items()])
            db.executemany(
                "UPDATE api_keys SET used_nanos = used_nanos + ?, held_nanos = held_nanos + ? WHERE id = ?",
                [(d[0], d[1], kid) for kid, d in plan.key_deltas.items() if d[0] or d[1]],
            )
            if plan.spend:
                db.executemany(_SQLITE_SPEND, [(*row, amount) for row, amount in plan.spend.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._commits_since_checkpoint += 1
        return plan


class _LockBusy(Exception):
    """Another connection holds SQLite's write lock right now."""


def _marks(items: Any) -> str:
    return ", ".join("?" for _ in items)


def _sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy uses for DateTime columns on SQLite (naive UTC)."""
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


_PG_SETTINGS: Final = {
    "enable_seqscan": "off", "enable_hashjoin": "off", "enable_mergejoin": "off",
    # Plan each statement once per connection: PostgreSQL otherwise plans the locking read anew at every
    # execution (a custom plan for its arrays: 0.19 ms of the server's time per group, on the hold's path).
    "plan_cache_mode": "force_generic_plan",
    # What _literal's quoting relies on (a backslash is an ordinary character in a '...' literal); the
    # default since PostgreSQL 9.1, pinned so that no server or role setting can change it.
    "standard_conforming_strings": "on",
    # Between groups a connection waits inside the BEGIN its last write sent (one round trip less per
    # group): a server or role that ends sessions idle in a transaction must not end these.
    "idle_in_transaction_session_timeout": "0",
}  # fmt: skip


class PostgresLedgerStore:
    parallel = 2  # two groups in flight: the next one's round trips overlap the last one's commit
    remote = True  # a commit is round trips to the server

    def __init__(self, dsn: str, instance_id: str) -> None:
        import asyncpg

        self._pg = asyncpg
        self._dsn = dsn
        self._instance_id = instance_id
        self._instance_literal = _literal(instance_id)
        self._idle: list[asyncpg.Connection] = []  # connections not committing a group right now
        self._in_order = asyncio.Lock()  # held from a group's start until its rows are locked
        self._open: set[asyncpg.Connection] = set()
        self.known = KnownFigures()
        self.expecting = True  # groups may commit in one round trip (off if a connection cannot create the check)
        # Settlements committed without waiting for the disk, with the connection each went on, until a
        # barrier (``barrier``) makes them durable; ``lost``: those to settle again (see _PG_ASYNC_COMMIT).
        self._unconfirmed: list[tuple[int, asyncpg.Connection, Settlement]] = []  # (commit number, ...) in order
        self._commits = 0
        self.lost: list[Settlement] = []

    async def _connect(self) -> asyncpg.Connection:
        """An idle connection, or a new one (at most ``parallel`` groups are committing at a time)."""
        conn = self._idle.pop() if self._idle else None
        if conn is not None and conn.is_closed():  # the server closed it (restarted?): what went on it may be lost
            self._open.discard(conn)
            self._lose_unconfirmed()
            conn = None
        if conn is None:
            # Every statement here reaches rows by primary key or an index, one row at a time. A plan made
            # while a table was nearly empty (a new database, or one whose statistics are stale) would scan
            # it whole (a sequential scan, or a hash join reading a whole index), and the connection keeps
            # its prepared statements' plans while the table grows: never scan, join by nested index lookups.
            conn = await self._pg.connect(self._dsn, server_settings=_PG_SETTINGS)
            self._open.add(conn)
            for name, (types, statement) in _PG_PREPARED.items():
                await conn.execute(f"PREPARE {name} ({types}) AS {statement}")
            try:
                await conn.execute(_PG_EXPECT_FUNCTIONS)
            except self._pg.PostgresError as exc:  # no right to create temporary objects: every group locks and reads
                if self.expecting:
                    log.warning("ledger: PostgreSQL refused the one-round-trip check (%s); every group will lock and read first", exc)
                self.expecting = False
        return conn

    async def commit(self, batch: list[Op]) -> GroupPlan:
        """One round trip where this process knows the figures the group needs (``KnownFigures``): check
        them under lock and write, in one query. Otherwise, or if they changed, two: lock and read
        (users, keys, the requests to settle), then write everything.

        Groups take their row locks in the order the writer handed them over (``_in_order``): a later
        group's locking read is sent once the earlier one holds its locks (or, for a group that checks
        the figures it expects, once it has committed), so PostgreSQL makes it wait for the earlier
        one's commit, and groups commit in order (a client's settlement is never left behind a later
        hold of its own)."""
        user_ids, key_ids, settle_ids, late_ids = _ids(batch)
        now = utc_now()
        today = now.date()
        conn: asyncpg.Connection | None = None
        await self._in_order.acquire()
        in_order = True
        known = self.known
        refused: Exception | None = None  # the server refused a statement: the connection is sound once rolled back
        try:
            try:
                conn = await self._connect()
                if not conn.is_in_transaction():  # a new connection, or one whose last group failed
                    await conn.execute("BEGIN")
                expected = known.expected(batch, user_ids, key_ids) if self.expecting else None
                if expected is not None:
                    known_balances, known_keys = expected
                    plan = plan_group(batch, known_balances, known_keys, dict.fromkeys(settle_ids, (None, False)), today)
                    if not plan.limited:  # (a refusal or a charge cut short is decided on the figures as locked, below)
                        stale = False
                        try:
                            await conn.execute(self._write(plan, now, settle_ids, _expectation(batch, plan)))
                        except self._pg.PostgresError as exc:
                            if exc.sqlstate != _PG_STALE:
                                raise
                            stale = True
                        if stale:
                            await conn.execute("ROLLBACK; BEGIN")  # not enough room after all: lock and read below
                            known.missed(user_ids)
                        else:
                            known.hit(user_ids, plan)
                            self._in_order.release()
                            in_order = False
                            self._committed(conn, batch)
                            return plan
                known.unsure(user_ids, key_ids, +1)  # until this group commits, the next ones touching it lock and read too
                try:
                    rows = await conn.fetch(_PG_LOCK, key_ids, settle_ids)
                    self._in_order.release()
                    in_order = False
                    balances: dict[int, int] = {}
                    keys: dict[int, KeyFigures] = {}
                    owners: dict[int, int] = {}
                    for r in rows:
                        if r[0] is not None:  # a user and one of its keys
                            balances[r[0]] = r[1]
                            keys[r[2]] = (r[3], r[4], r[5])
                            owners[r[2]] = r[0]
                    settling = _resolvable((r[6:] for r in rows if r[0] is None), late_ids)  # the requests to settle, locked
                    spent: dict[SpendKey, int] = {}
                    # (rows written only by groups that have locked their key or account first, as this one has)
                    for (scope, ident), periods in spend_scopes(batch).items():
                        rows = await conn.fetch(_PG_SPENT, scope, ident, spend_since(periods, today))
                        for period, amount in spent_in_periods(periods, [tuple(r) for r in rows], today).items():
                            spent[(scope, ident, period)] = amount
                    plan = plan_group(batch, balances, keys, settling, today, spent, owners)
                    await conn.execute(self._write(plan, now))
                finally:
                    known.unsure(user_ids, key_ids, -1)
                known.saw(plan)
            except self._pg.PostgresError as exc:
                refused = exc
            except BaseException:  # the connection broke, or the group was cancelled mid-statement: never reuse it
                if conn is not None:
                    self._open.discard(conn)
                    conn.terminate()
                self._lose_unconfirmed()
                raise
            if refused is not None and conn is not None:  # (awaited here: never inside an except block, tests/test_compiled.py)
                await self._roll_back(conn)
        finally:
            if in_order:
                self._in_order.release()
        if refused is not None:
            raise refused
        self._committed(conn, batch)
        return plan

    def _committed(self, conn: asyncpg.Connection, batch: list[Op]) -> None:
        """A group committed on ``conn`` without waiting for the disk: its settlements wait for a barrier."""
        self._commits += 1
        self._unconfirmed.extend((self._commits, conn, op) for op in batch if isinstance(op, Settlement))
        self._idle.append(conn)

    @property
    def unconfirmed(self) -> bool:
        """Whether settlements wait for a barrier."""
        return bool(self._unconfirmed)

    async def barrier(self) -> None:
        """Make the settlements committed so far durable: a transaction that waits for the disk, which
        PostgreSQL's log, written in order, reaches only after every commit before it. Each of those
        whose connection has closed since (its server may have restarted and lost it) goes to ``lost``."""
        if not self._unconfirmed:
            return
        conn = await self._connect()
        refused: Exception | None = None  # the server refused: try again at the next barrier
        try:
            if not conn.is_in_transaction():
                await conn.execute("BEGIN")
            before = self._commits  # every commit acknowledged so far precedes the barrier's in the log
            await conn.execute(_PG_BARRIER)
        except self._pg.PostgresError as exc:
            refused = exc
        except BaseException:
            self._open.discard(conn)
            conn.terminate()
            self._lose_unconfirmed()
            raise
        if refused is not None:
            await self._roll_back(conn)
            raise refused
        self._idle.append(conn)
        cut = next((i for i, entry in enumerate(self._unconfirmed) if entry[0] > before), len(self._unconfirmed))
        confirmed, self._unconfirmed = self._unconfirmed[:cut], self._unconfirmed[cut:]
        self.lost.extend(op for _, on, op in confirmed if on.is_closed())

    def _lose_unconfirmed(self) -> None:
        """A connection broke: the server may have restarted and lost what was not on disk yet. Every
        settlement not known durable is settled again (a settlement already stored finds its request no
        longer held and does nothing: see ``plan_group``)."""
        self.lost.extend(op for _, _, op in self._unconfirmed)
        self._unconfirmed.clear()

    async def _roll_back(self, conn: asyncpg.Connection) -> None:
        """After a refused statement: the connection back to the idle ones, its transaction rolled back."""
        try:
            if conn.is_in_transaction():
                await conn.execute("ROLLBACK")
        except Exception:  # the connection broke meanwhile: never reuse it
            self._open.discard(conn)
            conn.terminate()
            return
        self._idle.append(conn)

    def _write(self, plan: GroupPlan, now: datetime, settle_ids: list[str] | None = None, room: str | None = None) -> str:
        """The group's writes, its COMMIT and the next group's BEGIN, in one simple query (one round trip),
        their arguments as literals, the commit setting first (_PG_ASYNC_COMMIT). For a group planned on the
        figures this process expects, their checks (_PG_EXPECT_FUNCTIONS): that the requests it settles
        (``settle_ids``) are still held, before the request rows; that its accounts and keys have the
        ``room`` it needs, before the money."""
        now_ = _literal(now.isoformat())
        holds, settled, entries, balances, counters, spend = (_literal(orjson.dumps(rows).decode()) for rows in self._write_rows(plan))
        settling = f"SELECT {_PG_SETTLING_NAME}({_literal(orjson.dumps(sorted(set(settle_ids))).decode())}); " if settle_ids else ""
        check = f"SELECT {_PG_ROOM_NAME}({room}); " if room is not None else ""
        return (f"{_PG_ASYNC_COMMIT}{settling}EXECUTE {_PG_REQUESTS_NAME}({now_}, {holds}, {settled}, {self._instance_literal}); "
                f"{check}EXECUTE {_PG_MONEY_NAME}({now_}, {entries}, {balances}, {counters}, {spend}); COMMIT; BEGIN")

    def _write_rows(self, plan: GroupPlan) -> tuple[list[dict[str, Any]], ...]:
        """The group's rows, one list per document: a handful of parameters however large the group
        (encoding dozens of typed arrays element by element cost more CPU than the rest of the commit)."""
        holds = [dict(zip(_HOLD_COLUMNS, _hold_values(op))) for op in plan.new_requests]
        settled = [dict(zip(_SETTLE_COLUMNS, _settle_values(c)), id=c.op.request_id) for c in plan.settled]
        opening = plan.opening
        balances = [{"id": uid, "opening": opening[uid], "closing": closing} for uid, closing in plan.balances.items()]
        counters = [{"id": kid, "used_nanos": d[0], "held_nanos": d[1]} for kid, d in plan.key_deltas.items() if d[0] or d[1]]
        spend = [{"scope": row[0], "ident": row[1], "period": row[2], "start": row[3], "amount": amount} for row, amount in plan.spend.items()]
        return holds, settled, plan.entries, balances, counters, spend

    def start(self) -> None:
        pass

    def is_retryable(self, exc: Exception) -> bool:
        return isinstance(exc, (self._pg.exceptions.DeadlockDetectedError, self._pg.exceptions.SerializationError))

    def is_refusal(self, exc: Exception) -> bool:
        """Data PostgreSQL refuses (class 22: a value out of range or too long; class 23: a constraint) or
        the driver cannot encode, not a connection or server in trouble."""
        errors = self._pg.exceptions
        return isinstance(exc, (errors.DataError, errors.IntegrityConstraintViolationError, orjson.JSONEncodeError, OverflowError))

    async def close(self) -> None:
        try:
            await self.barrier()
        except Exception as exc:  # the database is gone: what is not durable is as after a crash
            log.error("ledger: the last settlements could not be made durable before stopping (%s)", type(exc).__name__)
        for conn in self._open:
            if not conn.is_closed():
                await conn.close()
        self._open.clear()
        self._idle.clear()


# A group commits without waiting for its log to reach the disk (``synchronous_commit`` off for that
# transaction): a request's hold never waits for the flush of the settlements it shares a commit with
# (≈0.15 ms, most of a c=1 group's server time after its round trip). What PostgreSQL acknowledged is
# committed and seen by every process at once; only a crash of the database server can take it, and
# only what its log writer had not flushed yet. So settlements stay *unconfirmed* until a barrier
# (_PG_BARRIER, ``BARRIER_AFTER`` after the first of them at the latest, off the request path) waits for
# the disk: PostgreSQL writes its log in order, so the barrier's flush makes every commit before it
# durable. A settlement whose connection broke before that is settled again (the server may have
# restarted without it; one that was stored finds its request no longer held, and does nothing). Holds
# need no barrier: a hold a crash of the database took leaves its request unrecorded and uncharged, as
# when the gateway's own process dies (docs/billing.md); no settlement, and no balance, depends on it.
_PG_ASYNC_COMMIT: Final = "SET LOCAL synchronous_commit TO off; "
# A transaction id makes the COMMIT a record in the log, which the session's synchronous_commit (on
# unless the operator turned it off for the whole server) waits for.
_PG_BARRIER: Final = "SELECT txid_current(); COMMIT; BEGIN"

# Lock the requests the group settles and read their state (no other transaction can change them before
# this one's write, which sets their state); then every user and key of the group, in id order, and read
# the figures admission needs. Every ledger transaction locks in this order (requests by id, then users
# and keys by id), so groups and processes sharing the database never deadlock; and an account's rows,
# the ones groups of different processes contend for, are locked last (and the write's request rows
# come before its money: _PG_REQUESTS, _PG_MONEY), so a group holds them for as short a time as it can.
# One statement, one round trip: UNION ALL runs its branches in order.
_PG_LOCK: Final = """
WITH settled AS (
    SELECT id, created_at, state, status FROM requests WHERE id = ANY($2::text[]) ORDER BY id FOR UPDATE
), accounts AS (
    SELECT u.id AS user_id, u.balance, k.id AS key_id, k.limit_nanos, k.used_nanos, k.held_nanos
    FROM api_keys k JOIN users u ON u.id = k.user_id
    WHERE k.id = ANY($1::int[])
    ORDER BY u.id, k.id
    FOR NO KEY UPDATE
)
SELECT NULL::int AS user_id, NULL::bigint AS balance, NULL::int AS key_id, NULL::bigint AS limit_nanos,
    NULL::bigint AS used_nanos, NULL::bigint AS held_nanos, id, created_at, state, status
FROM settled
UNION ALL
SELECT user_id, balance, key_id, limit_nanos, used_nanos, held_nanos, NULL, NULL, NULL, NULL FROM accounts
"""


# A group planned on the figures this process knows (KnownFigures) sends, in its write's round trip,
# checks that lock the rows the locking read would lock, in the same order, and compare them as locked
# (a row locked after a wait is read as the transaction that held it left it) with what the group's
# decisions rest on: first every request to settle still `held` (_PG_SETTLING_NAME, before the request
# rows are written); then, just before the money is written, every key with its account, each
# account's balance at least the least the group needs (``GroupPlan.need_balances``), each key with no
# limit or at least the room it needs (``need_rooms``) (_PG_ROOM_NAME). Figures another process changed
# meanwhile pass as long as they leave that much room: every hold is then admitted and every charge made
# whole, as the plan says, and the write applies the group's changes to the figures as locked
# (_PG_MONEY), so several processes sharing an account commit in one round trip each. Otherwise a
# check raises _PG_STALE, and PostgreSQL runs nothing more of the query: the group is rolled back and
# locks and reads as usual. Temporary functions (each connection creates its own: no schema object,
# nothing for a migration), in PL/pgSQL because only a function can stop the query; each of their
# statements sees what was committed before it (READ COMMITTED), so the comparison reads the rows as
# locked. The users' and keys' rows are locked FOR NO KEY UPDATE, as the UPDATE that follows would lock
# them anyway: it excludes every other writer of the row and lets a foreign key elsewhere (a session's,
# a payment's) check that the user exists without waiting for the group.
_PG_SETTLING_NAME: Final = "pg_temp.tokenhub_ledger_settling"
_PG_ROOM_NAME: Final = "pg_temp.tokenhub_ledger_room"
_PG_STALE: Final = "THL01"  # a SQLSTATE of the class no PostgreSQL error uses
# How many of the requests named by $1 (a JSON array of ids) are still held, each locked. Counted by the
# aggregate, not filtered by a WHERE on their state: a condition on the state let the planner reach them
# through ix_requests_held, reading every open hold of every process (1.4 ms of the server's time a group
# with 5,000 holds open, and growing with them); this reads the group's own requests by primary key.
_PG_STILL_HELD: Final = """SELECT count(*) FILTER (WHERE state = 'held') FROM (
    SELECT state FROM requests WHERE id = ANY(ARRAY(SELECT json_array_elements_text($1))) ORDER BY id FOR UPDATE
) AS locked"""
_PG_EXPECT_FUNCTIONS: Final = f"""
CREATE FUNCTION {_PG_SETTLING_NAME}(settling json) RETURNS void LANGUAGE plpgsql AS $check$
BEGIN
    IF ({_PG_STILL_HELD}) <> json_array_length(settling) THEN
        RAISE EXCEPTION 'a request this process expected to settle is no longer held' USING ERRCODE = '{_PG_STALE}';
    END IF;
END
$check$;
CREATE FUNCTION {_PG_ROOM_NAME}(accounts json) RETURNS void LANGUAGE plpgsql AS $check$
BEGIN
    IF (SELECT count(*) FROM (
            SELECT e.user_id = u.id AND (e.balance IS NULL OR u.balance >= e.balance)
                AND (e.room IS NULL OR k.limit_nanos IS NULL OR k.limit_nanos - k.used_nanos - k.held_nanos >= e.room) AS enough
            FROM json_to_recordset(accounts) AS e(user_id int, key_id int, balance bigint, room bigint)
            JOIN api_keys k ON k.id = e.key_id JOIN users u ON u.id = k.user_id
            ORDER BY u.id, k.id FOR NO KEY UPDATE OF k, u) AS locked WHERE enough) <> json_array_length(accounts) THEN
        RAISE EXCEPTION 'the ledger figures this process expected leave too little room' USING ERRCODE = '{_PG_STALE}';
    END IF;
END
$check$
"""


def _expectation(batch: list[Op], plan: GroupPlan) -> str:
    """The argument of the room check (_PG_ROOM_NAME): each key of the group with its account and the least
    balance and room the group needs (none: it needs nothing of them), as a JSON literal."""
    pairs = sorted({(op.user_id, op.key_id) for op in batch})
    needs, rooms = plan.need_balances, plan.need_rooms
    accounts = [{"user_id": u, "key_id": k, "balance": needs.get(u), "room": rooms.get(k)} for u, k in pairs]
    return _literal(orjson.dumps(accounts).decode())


def _literal(text: str) -> str:
    """``text`` as a PostgreSQL string literal: in single quotes, each single quote doubled. Nothing else
    is special in a standard-conforming literal (pinned in _PG_SETTINGS), and ``text`` never holds
    U+0000 (JSON from orjson escapes it; the timestamp has none)."""
    return "'" + text.replace("'", "''") + "'"


# The group's writes in two statements, each prepared once per connection and executed with the COMMIT in
# one simple query; their rows read from JSON documents typed by the tables themselves
# (json_populate_recordset with the table's row type). First the request rows, which no other process's
# group touches (_PG_REQUESTS: $1 now, $2 the new requests, each with its own values only, $3 the
# settlements, $4 this process's instance id); then, after the room check has locked the account's rows,
# the money (_PG_MONEY: $1 now, $2 the ledger entries, $3 each account's balance before and after the
# group as planned, $4 the key counters' increments). The money moves the figures as locked rather than
# setting them: each balance, and each entry's balance_after, by how far the locked balance is from the
# one the group was planned on (nothing, when it was planned on the figures as locked); each key's
# counters by their increments. So a group planned on figures another process has changed since (a check
# found they leave enough room) writes what the same decisions make of the figures as they are.
_PG_HELD: Final = ", ".join(f"'{v}'" if isinstance(v, str) else str(v).lower() for v in _HELD.values())  # 'held', 0, ..., false
_PG_REQUESTS: Final = f"""
WITH new_requests AS (
    INSERT INTO requests ({", ".join(_REQUEST_COLUMNS)})
    SELECT {", ".join(f"t.{c}" for c in _HOLD_COLUMNS)}, {_PG_HELD}, $4, $1
    FROM json_populate_recordset(NULL::requests, $2::json) AS t
)
UPDATE requests r SET {_settle_set("s.{}", "r.{}")}, settled_at = $1
FROM json_populate_recordset(NULL::requests, $3::json) AS s WHERE r.id = s.id
"""
_PG_MONEY: Final = """
WITH moved AS (
    SELECT u.id, u.balance - b.opening AS offset_, b.closing
    FROM json_to_recordset($3::json) AS b(id int, opening bigint, closing bigint) JOIN users u ON u.id = b.id
), entries AS (
    INSERT INTO ledger_entries (user_id, kind, amount, balance_after, request_id, created_at)
    SELECT e.user_id, e.kind, e.amount, e.balance_after + m.offset_, e.request_id, $1
    FROM json_populate_recordset(NULL::ledger_entries, $2::json) AS e JOIN moved m ON m.id = e.user_id
), key_counters AS (
    UPDATE api_keys k SET used_nanos = k.used_nanos + d.used_nanos, held_nanos = k.held_nanos + d.held_nanos
    FROM json_populate_recordset(NULL::api_keys, $4::json) AS d WHERE k.id = d.id
), spend AS (
    INSERT INTO spend_by_period AS p (scope, ident, period, start, amount)
    SELECT d.scope, d.ident, d.period, d.start, d.amount FROM json_populate_recordset(NULL::spend_by_period, $5::json) AS d
    ON CONFLICT (scope, ident, period, start) DO UPDATE SET amount = p.amount + excluded.amount
)
UPDATE users u SET balance = m.closing + m.offset_ FROM moved m WHERE u.id = m.id
"""
_PG_SPENT: Final = _SPENT.format("$1", "$2::int", "$3", "$1", "$2::int")
_PG_REQUESTS_NAME: Final = "tokenhub_ledger_requests"
_PG_MONEY_NAME: Final = "tokenhub_ledger_money"
_PG_PREPARED: Final = {  # name: (parameter types, statement)
    _PG_REQUESTS_NAME: ("timestamptz, json, json, text", _PG_REQUESTS),
    _PG_MONEY_NAME: ("timestamptz, json, json, json, json", _PG_MONEY),
}


def store_for(engine: AsyncEngine, instance_id: str) -> SqliteLedgerStore | PostgresLedgerStore:
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return SqliteLedgerStore(url.database or ":memory:", instance_id)
    return PostgresLedgerStore(url.set(drivername="postgresql").render_as_string(hide_password=False), instance_id)
