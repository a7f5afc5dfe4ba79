"""The ledger writer and the sweeper, directly, on both databases."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from tokenhub.accounts.service import create_key, create_user
from tokenhub.billing.ledger import Hold, LedgerWriter, Settlement
from tokenhub.billing.ledger_plan import plan_group
from tokenhub.billing.ledger_store import KnownFigures, PostgresLedgerStore, SqliteLedgerStore
from tokenhub.billing.service import add_credits, check_ledger, credits_summary
from tokenhub.billing.sweeper import Sweeper
from tokenhub.config import normalize_database_url
from tokenhub.errors import InsufficientCredits
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine, utc_now
from tokenhub.storage.tables import api_keys, instances, ledger_entries, requests, spend_by_period, users
from tokenhub.tokens import Usage


async def _setup(url: str, balance: int = 1_000_000):
    engine = create_engine(normalize_database_url(url))
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        user = await create_user(conn, "l@example.com")
        await add_credits(conn, user["id"], balance)
        _, key = await create_key(conn, user["id"])
    return engine, user["id"], key["id"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _bills(hold: Hold, cost: int, status: str = "ok") -> Settlement:
    """The settlement a request's bill makes of its committed hold: it knows the day its request was created."""
    assert hold.held_on is not None
    return Settlement(hold.request_id, hold.user_id, hold.key_id, hold.amount, cost, status, held_on=hold.held_on)


def test_hold_charge_and_release_are_entries_summing_to_the_balance(database_url: str):
    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-a", uid, kid, 400_000, "m"))
        await ledger.hold(Hold("gen-b", uid, kid, 500_000, "m"))
        with pytest.raises(InsufficientCredits):
            await ledger.hold(Hold("gen-c", uid, kid, 100_001, "m"))  # 100,000 left
        ledger.settle(Settlement("gen-a", uid, kid, 400_000, 123_456, "ok", Usage(10, 20)))
        ledger.settle(Settlement("gen-b", uid, kid, 500_000, 0, "upstream_error"))
        await ledger.flush()
        async with engine.connect() as conn:
            summary = await credits_summary(conn, uid)
            kinds = [r.kind for r in await conn.execute(select(ledger_entries.c.kind).order_by(ledger_entries.c.id))]
            report = await check_ledger(conn)
        assert summary["balance_nanos"] == 1_000_000 - 123_456
        assert summary["total_usage_nanos"] == 123_456
        assert kinds == ["adjustment", "hold", "hold", "release", "charge", "release"]
        assert report.ok, report.problems
        await ledger.close()
        await engine.dispose()

    run(scenario())


def test_a_hold_is_settled_exactly_once(database_url: str):
    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-x", uid, kid, 300_000, "m"))
        settle = Settlement("gen-x", uid, kid, 300_000, 100_000, "ok")
        ledger.settle(settle)
        ledger.settle(settle)  # same batch
        await ledger.flush()
        ledger.settle(Settlement("gen-x", uid, kid, 300_000, 0, "interrupted"))  # a later batch
        await ledger.flush()
        async with engine.connect() as conn:
            balance = await conn.scalar(select(users.c.balance).where(users.c.id == uid))
            charges = (await conn.execute(select(ledger_entries).where(ledger_entries.c.kind == "charge"))).all()
            report = await check_ledger(conn)
        assert balance == 900_000 and len(charges) == 1
        assert report.ok, report.problems
        await ledger.close()
        await engine.dispose()

    run(scenario())


def test_holds_arriving_over_a_few_loop_turns_share_one_group(database_url: str):
    """A burst of requests reaches its holds over a few event-loop turns; they are committed together
    (a group stamps its rows once, so one group means one ``created_at``). Committing after the first
    turn split such a burst into groups of the early ones and the rest."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()

        async def hold_after(turns: int, request_id: str) -> None:
            for _ in range(turns):
                await asyncio.sleep(0)
            await ledger.hold(Hold(request_id, uid, kid, 1_000, "m"))

        await asyncio.gather(*(hold_after(turns, f"gen-{turns}-{i}") for turns in (0, 1, 2) for i in range(3)))
        async with engine.connect() as conn:
            stamps = set((await conn.execute(select(requests.c.created_at))).scalars())
        assert len(stamps) == 1, f"{len(stamps)} groups for one burst"
        await ledger.close()
        await engine.dispose()

    run(scenario())


def test_the_balance_is_read_under_a_lock(database_url: str):
    """The admission decision reads balances under a row lock (PostgreSQL) or SQLite's write lock."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        store = ledger._store
        statements: list[str] = []
        if isinstance(store, SqliteLedgerStore):
            store._connect().set_trace_callback(statements.append)
        else:
            assert isinstance(store, PostgresLedgerStore)
            conn = await store._connect()
            conn.add_query_logger(lambda record: statements.append(record.query))
            store._idle.append(conn)  # the connection the next group takes
        ledger.start()
        await ledger.hold(Hold("gen-l", uid, kid, 1, "m"))
        await ledger.close()
        await engine.dispose()
        balance_reads = [  # the statements that read a balance (the group's write, with its INSERTs, only sets it)
            s for s in statements if "users" in s and "balance" in s and s.lstrip().upper().startswith(("SELECT", "WITH")) and "INSERT" not in s
        ]
        assert balance_reads
        if isinstance(store, PostgresLedgerStore):
            assert all("FOR NO KEY UPDATE" in s for s in balance_reads)
        else:
            assert statements.index("BEGIN IMMEDIATE") < statements.index(balance_reads[0])

    run(scenario())


async def _logged_postgres_writer(database_url: str) -> tuple[Any, int, int, LedgerWriter, Any, list[str]]:
    """A started writer on PostgreSQL whose groups all go through one connection, its statements logged."""
    engine, uid, kid = await _setup(database_url)
    ledger = LedgerWriter(engine, "test-instance")
    store = ledger._store
    assert isinstance(store, PostgresLedgerStore)
    statements: list[str] = []
    conn = await store._connect()
    conn.add_query_logger(lambda record: statements.append(record.query))
    store._idle.append(conn)
    store.parallel = 1  # every group on this connection
    ledger.start()
    return engine, uid, kid, ledger, conn, statements


def test_postgres_groups_commit_without_waiting_for_the_disk_and_a_barrier_follows_the_settlements(database_url: str):
    """Every group commits with ``synchronous_commit`` off (a hold never waits for the flush of the
    settlements it shares a commit with); within ``BARRIER_AFTER`` of a settlement's commit a barrier
    waits for the disk, which makes every commit before it durable (the log is written in order). The
    setting is the transaction's own: it does not stay on the connection. Each write goes with its
    COMMIT and the next group's BEGIN: only a new connection sends BEGIN alone. The second group's
    figures are the first one's: it checks them instead of reading them first."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's commit setting")

    async def scenario() -> None:
        engine, uid, kid, ledger, conn, statements = await _logged_postgres_writer(database_url)
        store = ledger._store
        hold = Hold("gen-s", uid, kid, 1_000, "m")
        await ledger.hold(hold)
        assert not store.unconfirmed  # holds need no barrier
        ledger.settle(_bills(hold, 600))
        await ledger.flush()
        writes = [s for s in statements if "EXECUTE tokenhub_ledger_money(" in s]
        assert len(writes) == 2 and all(w.endswith("; COMMIT; BEGIN") for w in writes)
        assert writes[0].startswith("SET LOCAL synchronous_commit TO off; EXECUTE tokenhub_ledger_requests(")
        # checked, not read: the request to settle still held before the request rows are written, the
        # account's room just before the money (so its rows are locked for the money's writes alone)
        assert writes[1].startswith("SET LOCAL synchronous_commit TO off; SELECT pg_temp.tokenhub_ledger_settling('[\"gen-s\"]'); "
                                    "EXECUTE tokenhub_ledger_requests("), writes[1]
        assert "; SELECT pg_temp.tokenhub_ledger_room('[{" in writes[1].split("EXECUTE tokenhub_ledger_requests(")[1].split(
            "EXECUTE tokenhub_ledger_money(")[0], writes[1]
        assert store.unconfirmed and not [s for s in statements if "txid_current" in s]
        for _ in range(100):  # the barrier, BARRIER_AFTER later
            if not store.unconfirmed:
                break
            await asyncio.sleep(0.01)
        barriers = [s for s in statements if "txid_current" in s]
        assert barriers == ["SELECT txid_current(); COMMIT; BEGIN"] and not store.unconfirmed
        assert statements.index(barriers[0]) > statements.index(writes[1])
        assert len([s for s in statements if s.lstrip().startswith("WITH settled")]) == 1  # the first group's locking read only
        assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN"]  # the first group's, alone
        assert conn.is_in_transaction()  # the next group's, already begun
        assert await conn.fetchval("SHOW synchronous_commit") == "on"  # what the barrier's commit waits with
        assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "0"
        async with engine.connect() as c:
            assert await c.scalar(select(users.c.balance).where(users.c.id == uid)) == 1_000_000 - 600
        await ledger.close()
        await engine.dispose()

    run(scenario())


def test_postgres_settlements_not_yet_durable_are_settled_again_when_their_connection_breaks(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """A settlement committed without waiting for the disk is lost if the database server crashes before
    its log is flushed. The writer keeps it until a barrier has made it durable; if its connection breaks
    first (as every connection does when the server restarts), it is settled again. Here the database
    is put back as a crash would have left it (the request held again, the money as before the settlement)
    and the connection is killed: the settlement is applied again, once. A settlement that was not lost
    (the second round, connection killed alone) finds its request settled and changes nothing."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's commit setting")
    monkeypatch.setattr("tokenhub.billing.ledger.BARRIER_AFTER", 3600.0)  # no barrier comes in time

    async def scenario() -> None:
        engine, uid, kid, ledger, conn, _ = await _logged_postgres_writer(database_url)
        store = ledger._store

        async def figures() -> tuple[Any, ...]:
            async with engine.connect() as c:
                balance = await c.scalar(select(users.c.balance).where(users.c.id == uid))
                key = (await c.execute(select(api_keys.c.used_nanos, api_keys.c.held_nanos).where(api_keys.c.id == kid))).one()
                entries = (await c.execute(select(ledger_entries.c.kind, ledger_entries.c.amount).order_by(ledger_entries.c.id))).all()
                row = (await c.execute(select(requests.c.state, requests.c.cost_nanos).where(requests.c.id == "gen-c"))).one()
                spend = (await c.execute(select(spend_by_period).order_by(*spend_by_period.primary_key))).all()
            return balance, tuple(key), [tuple(e) for e in entries], tuple(row), [tuple(r) for r in spend]

        hold = Hold("gen-c", uid, kid, 1_000, "m")
        await ledger.hold(hold)
        before = await figures()
        ledger.settle(_bills(hold, 600))
        await ledger.flush()
        settled = await figures()
        assert settled[0] == 1_000_000 - 600 and settled[3] == ("settled", 600) and store.unconfirmed

        async with engine.begin() as c:  # what a crash of the server before its log writer's flush leaves
            await c.execute(update(users).where(users.c.id == uid).values(balance=before[0]))
            await c.execute(update(api_keys).where(api_keys.c.id == kid).values(used_nanos=before[1][0], held_nanos=before[1][1]))
            await c.execute(ledger_entries.delete().where(ledger_entries.c.request_id == "gen-c", ledger_entries.c.kind != "hold"))
            await c.execute(update(requests).where(requests.c.id == "gen-c").values(state="held", status=None, cost_nanos=0))
            await c.execute(spend_by_period.delete())
            await c.execute(insert(spend_by_period), [dict(zip(("scope", "ident", "period", "start", "amount"), r)) for r in before[4]])
            await c.execute(select(func.pg_terminate_backend(conn.get_server_pid())))
        assert await figures() == before
        for _ in range(200):
            if conn.is_closed():
                break
            await asyncio.sleep(0.01)
        hold_d = Hold("gen-d", uid, kid, 1_000, "m")
        await ledger.hold(hold_d)  # the next group finds the connection gone
        await ledger.flush()
        again = await figures()
        assert again[0] == 1_000_000 - 600 - 1_000 and again[3] == ("settled", 600)
        assert [e for e in again[2] if e[0] == "charge"] == [("charge", -600)]
        assert "settled again" in caplog.text

        caplog.clear()  # the same once more, nothing lost: settling again changes nothing
        ledger.settle(_bills(hold_d, 250))
        await ledger.flush()
        done = await figures()
        victims = list(store._idle)
        async with engine.connect() as c:
            for victim in victims:
                await c.execute(select(func.pg_terminate_backend(victim.get_server_pid())))
        for _ in range(200):
            if all(v.is_closed() for v in victims):
                break
            await asyncio.sleep(0.01)
        await ledger.hold(Hold("gen-e", uid, kid, 1_000, "m"))
        await ledger.flush()
        assert "settled again" in caplog.text
        final = await figures()
        assert final[0] == done[0] - 1_000 and [e for e in final[2] if e[0] == "charge"] == [("charge", -600), ("charge", -250)]
        await ledger.close()
        async with engine.connect() as c:
            report = await check_ledger(c)
        assert report.ok, report.problems
        await engine.dispose()

    run(scenario())


def test_postgres_groups_on_known_figures_commit_in_one_round_trip_and_read_again_when_they_changed(database_url: str):
    """After a group's commit this process knows its account's figures: the next group is planned on them
    and sent with a check that locks the rows and finds them unchanged, in one round trip. When anything
    else changed them (a refund by an operator, a key's limit lowered, a request another process resolved), the check
    fails, nothing is written, and the group locks and reads: its holds are decided on the figures as
    they are (planned on the stale ones, these holds would have overdrawn the account and the key)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's round trips")

    async def scenario() -> None:
        engine, uid, kid, ledger, _, statements = await _logged_postgres_writer(database_url)
        known = ledger._store.known

        def locking_reads() -> int:
            return len([s for s in statements if s.lstrip().startswith("WITH settled")])

        first = Hold("gen-1", uid, kid, 100_000, "m")
        await ledger.hold(first)  # unknown figures: locked and read
        assert (locking_reads(), known.hits, known.misses) == (1, 0, 0)
        ledger.settle(_bills(first, 40_000))
        await ledger.hold(Hold("gen-2", uid, kid, 100_000, "m"))  # known: checked and written at once
        assert (locking_reads(), known.hits, known.misses) == (1, 1, 0)

        async with engine.begin() as c:  # an operator takes back most of the credit meanwhile
            await add_credits(c, uid, -800_000, kind="refund")
        with pytest.raises(InsufficientCredits, match="Insufficient credits"):  # 60,000 left, not 860,000
            await ledger.hold(Hold("gen-3", uid, kid, 100_000, "m"))
        assert (locking_reads(), known.hits, known.misses) == (2, 1, 1)
        assert any("tokenhub_ledger_room" in s and "gen-3" in s for s in statements)  # tried, refused by the check
        await ledger.hold(Hold("gen-4", uid, kid, 50_000, "m"))  # the next group after a miss reads too
        assert (locking_reads(), known.hits, known.misses) == (3, 1, 1)
        await ledger.hold(Hold("gen-5", uid, kid, 1_000, "m"))  # then the figures are expected again
        assert (locking_reads(), known.hits, known.misses) == (3, 2, 1)

        async with engine.begin() as c:  # the key's limit lowered: 4,000 of room left (40,000 used, 151,000 held)
            await c.execute(update(api_keys).where(api_keys.c.id == kid).values(limit_nanos=195_000))
        with pytest.raises(InsufficientCredits, match="spending limit"):
            await ledger.hold(Hold("gen-6", uid, kid, 5_000, "m"))
        assert known.misses == 2

        seventh = Hold("gen-7", uid, kid, 0, "m")
        await ledger.hold(seventh)  # (read: the group after a miss)
        other = LedgerWriter(engine, "other-instance")  # another process resolves it: no figure changes, its state does
        other.start()
        other.settle(Settlement("gen-7", uid, kid, 0, 0, "ok"))
        await other.flush()
        ledger.settle(_bills(seventh, 1_000))  # resolved already: never a second time
        await ledger.flush()
        assert (known.hits, known.misses) == (2, 3)

        async with engine.connect() as c:
            report = await check_ledger(c)
            balance = await c.scalar(select(users.c.balance).where(users.c.id == uid))
            key = (await c.execute(select(api_keys).where(api_keys.c.id == kid))).one()
            row = (await c.execute(select(requests).where(requests.c.id == "gen-7"))).one()
        assert report.ok, report.problems
        assert (row.state, row.cost_nanos) == ("released", 0)
        # 1,000,000 − 40,000 charged − 800,000 refunded − 151,000 held (gen-2, gen-4, gen-5)
        assert balance == 9_000 and (key.used_nanos, key.held_nanos) == (40_000, 151_000)
        for writer in (ledger, other):
            await writer.close()
        await engine.dispose()

    run(scenario())


def test_postgres_processes_sharing_an_account_each_commit_in_one_round_trip_while_it_has_room(database_url: str):
    """Two processes serve one account and key: each one's commits change the figures the other knows. A
    group's check asks for the room its decisions need, not for unchanged figures, and its write moves
    the figures as locked: so both keep committing in one round trip, and every balance, counter and
    entry (balance_after counted from the balance as locked) comes out as if each group had read first.
    When what is left no longer covers a hold, the check fails and the hold is refused on the figures as
    locked."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's round trips")

    async def scenario() -> None:
        engine, uid, kid, ledger, _, statements = await _logged_postgres_writer(database_url)
        known = ledger._store.known
        other = LedgerWriter(engine, "other-instance")
        other.start()
        for i in range(4):  # each writer's second and later groups are planned on figures the other changed
            for writer, name in ((ledger, "a"), (other, "b")):
                rid = f"gen-{name}{i}"
                hold = Hold(rid, uid, kid, 100_000, "m")
                await writer.hold(hold)
                writer.settle(_bills(hold, 10_000 + i))
                await writer.flush()
        reads = [s for s in statements if s.lstrip().startswith("WITH settled")]
        assert len(reads) == 1 and (known.hits, known.misses) == (7, 0)  # only this writer's first group read
        assert (other._store.known.hits, other._store.known.misses) == (7, 0)
        assert known.balances[uid] != 1_000_000 - 2 * (4 * 10_000 + 6)  # its own view: it never saw the other's charges

        async with engine.connect() as c:
            balance = await c.scalar(select(users.c.balance).where(users.c.id == uid))
            key = (await c.execute(select(api_keys).where(api_keys.c.id == kid))).one()
            entries = (await c.execute(select(ledger_entries.c.amount, ledger_entries.c.balance_after)
                                       .where(ledger_entries.c.user_id == uid).order_by(ledger_entries.c.id))).all()
            report = await check_ledger(c)
        assert balance == 1_000_000 - 2 * (4 * 10_000 + 6) and (key.used_nanos, key.held_nanos) == (2 * (4 * 10_000 + 6), 0)
        running = 0
        for amount, after in entries:  # every entry's balance_after is the balance it left
            running += amount
            assert after == running
        assert running == balance and report.ok, report.problems

        async with engine.begin() as c:  # an operator takes back all but 50,000 nanos
            await add_credits(c, uid, -(balance - 50_000), kind="refund")
        with pytest.raises(InsufficientCredits, match="Insufficient credits"):
            await ledger.hold(Hold("gen-c", uid, kid, 100_000, "m"))  # planned as admitted, refused as locked
        assert (known.hits, known.misses) == (7, 1)
        for writer in (ledger, other):
            await writer.close()
        async with engine.connect() as c:
            assert (await check_ledger(c)).ok
        await engine.dispose()

    run(scenario())


def test_an_account_whose_figures_keep_changing_elsewhere_is_expected_ever_more_rarely():
    """A miss costs a round trip: after one, an account's next group locks and reads; after the next
    miss, its next 2, then 4 … up to DOUBT_MAX; a hit halves the wait again."""
    known = KnownFigures()
    plan = plan_group([Hold("gen-k", 7, 70, 1, "m")], {7: 100}, {70: (None, 0, 0)}, {}, utc_now().date())
    known.saw(plan)
    batch = [Hold("gen-next", 7, 70, 1, "m")]

    def reads_before_expected() -> int:
        reads = 0
        while known.expected(batch, [7], [70]) is None:
            reads += 1
        return reads

    assert reads_before_expected() == 0
    waits = []
    for _ in range(12):
        known.missed([7])
        waits.append(reads_before_expected())
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024]
    known.hit([7], plan)
    known.missed([7])
    assert reads_before_expected() == 1024  # halved to 512 by the hit, doubled by the miss
    known.hit([7], plan)
    assert reads_before_expected() == 0
    known.unsure([7], [70], +1)  # a group locking and reading this account right now
    assert known.expected(batch, [7], [70]) is None
    known.unsure([7], [70], -1)
    assert known.expected(batch, [7], [70]) == ({7: 99}, {70: (None, 0, 1)})
    budgeted = [Hold("gen-b", 7, 70, 1, "m", budgets=(("key", 70, "day", 10),))]
    assert known.expected(budgeted, [7], [70]) is None  # spend by period: read at commit


def test_sweeper_releases_holds_of_a_dead_process_once(database_url: str):
    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        dead = LedgerWriter(engine, "dead-instance")
        dead.start()
        await dead.hold(Hold("gen-orphan", uid, kid, 250_000, "m"))
        await dead.close()  # the process "dies" with the hold open
        async with engine.begin() as conn:
            await conn.execute(
                insert(instances).values(id="dead-instance", host="elsewhere", pid=1, started_at=utc_now(), heartbeat_at=utc_now())
            )
            await conn.execute(update(instances).where(instances.c.id == "dead-instance").values(heartbeat_at=utc_now().replace(year=2020)))

        live = LedgerWriter(engine, "live-instance")
        live.start()
        sweeper = Sweeper(engine, live, "live-instance", stale_after=0)  # every hold of a silent process is old enough
        await sweeper.register()
        assert await sweeper.sweep() == 1
        assert await sweeper.sweep() == 0
        async with engine.connect() as conn:
            row = (await conn.execute(select(requests).where(requests.c.id == "gen-orphan"))).one()
            balance = await conn.scalar(select(users.c.balance).where(users.c.id == uid))
            report = await check_ledger(conn)
        assert (row.state, row.status) == ("released", "interrupted")
        assert balance == 1_000_000
        assert report.ok, report.problems
        await live.close()
        await engine.dispose()

    run(scenario())


def test_ledger_check_finds_a_tampered_balance(database_url: str):
    async def scenario() -> None:
        engine, uid, _ = await _setup(database_url)
        async with engine.begin() as conn:
            await conn.execute(update(users).where(users.c.id == uid).values(balance=users.c.balance + 1))
        async with engine.connect() as conn:
            report = await check_ledger(conn)
        assert not report.ok and "l@example.com" in report.problems[0]
        await engine.dispose()

    run(scenario())


def test_ledger_check_finds_a_spend_by_period_that_is_not_the_sum_of_its_requests(database_url: str):
    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        hold = Hold("gen-a", uid, kid, 1_000, "m")
        await ledger.hold(hold)
        ledger.settle(_bills(hold, 300))
        await ledger.close()
        async with engine.begin() as conn:
            assert (await check_ledger(conn)).ok
            await conn.execute(update(spend_by_period).where(spend_by_period.c.scope == "key").values(amount=spend_by_period.c.amount - 1))
            report = await check_ledger(conn)
        assert [p.split(" kept")[0] for p in report.problems] == [f"key {kid}: spend this {p}" for p in ("day", "week", "month")]
        await engine.dispose()

    run(scenario())


def test_ledger_check_finds_an_entry_whose_balance_after_is_not_the_sum_up_to_it(database_url: str):
    """Each entry's balance_after is its user's balance once the entry applied: the sum of the user's
    entries up to it, in order. A wrong one (the balance itself right) is reported by its id."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-a", uid, kid, 1_000, "m"))
        ledger.settle(Settlement("gen-a", uid, kid, 1_000, 300, "ok"))
        await ledger.close()
        async with engine.connect() as conn:
            assert (await check_ledger(conn)).ok
        async with engine.begin() as conn:
            charge = await conn.scalar(select(ledger_entries.c.id).where(ledger_entries.c.kind == "charge"))
            await conn.execute(update(ledger_entries).where(ledger_entries.c.id == charge).values(balance_after=ledger_entries.c.balance_after + 5))
        async with engine.connect() as conn:
            report = await check_ledger(conn)
        assert len(report.problems) == 1, report.problems  # the balance still equals the sum of all entries
        assert report.problems[0].startswith(f"ledger entry {charge} (user {uid}): balance after "), report.problems
        await engine.dispose()

    run(scenario())


def test_a_hold_on_a_key_or_account_that_does_not_exist_is_refused_and_writes_nothing(database_url: str):
    """The ledger's tables have no foreign keys (tables.py): the writer itself refuses a hold whose key is
    gone, or whose key is not its account's, and writes no row for it; the group's other holds go on."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        async with engine.begin() as conn:
            other = await create_user(conn, "other@example.com")
            await add_credits(conn, other["id"], 1_000_000)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        results = await asyncio.gather(
            ledger.hold(Hold("gen-nokey", uid, kid + 1000, 1_000, "m")),
            ledger.hold(Hold("gen-notyours", other["id"], kid, 1_000, "m")),
            ledger.hold(Hold("gen-fine", uid, kid, 1_000, "m")),
            return_exceptions=True,
        )
        await ledger.close()
        assert [getattr(r, "code", r) for r in results] == ["account_missing", "account_missing", None], results
        async with engine.connect() as conn:
            assert (await conn.execute(select(requests.c.id))).scalars().all() == ["gen-fine"]
            assert (await conn.execute(select(ledger_entries.c.request_id).where(ledger_entries.c.kind == "hold"))).scalars().all() == ["gen-fine"]
            assert await conn.scalar(select(users.c.balance).where(users.c.id == other["id"])) == 1_000_000
            assert (await check_ledger(conn)).ok
        await engine.dispose()

    run(scenario())


def test_ledger_check_finds_rows_whose_user_or_key_does_not_exist(database_url: str):
    """What no foreign key guards, the check does: an entry of a user that does not exist, a request whose
    key does not exist or belongs to another user."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        async with engine.begin() as conn:
            other = await create_user(conn, "other@example.com")
            _, other_key = await create_key(conn, other["id"])
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        for rid in ("gen-a", "gen-b"):
            await ledger.hold(Hold(rid, uid, kid, 1_000, "m"))
            ledger.settle(Settlement(rid, uid, kid, 1_000, 300, "ok"))
        await ledger.close()
        async with engine.begin() as conn:
            assert (await check_ledger(conn)).ok
            await conn.execute(insert(ledger_entries).values(user_id=uid + 1000, kind="adjustment", amount=5, balance_after=5, created_at=utc_now()))
            await conn.execute(update(requests).where(requests.c.id == "gen-a").values(key_id=kid + 1000))
            await conn.execute(update(requests).where(requests.c.id == "gen-b").values(key_id=other_key["id"]))
        async with engine.connect() as conn:
            problems = (await check_ledger(conn)).problems
        assert f"ledger entries of user {uid + 1000}, which does not exist: 0.000000005 in all" in problems, problems
        assert f"request gen-a: key {kid + 1000} does not exist or is not a key of user {uid}" in problems, problems
        assert f"request gen-b: key {other_key['id']} does not exist or is not a key of user {uid}" in problems, problems
        await engine.dispose()

    run(scenario())


async def _read(engine: Any, request_id: str, uid: int, kid: int) -> tuple[Any, int, Any, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(requests).where(requests.c.id == request_id))).one()
        balance = await conn.scalar(select(users.c.balance).where(users.c.id == uid))
        key = (await conn.execute(select(api_keys).where(api_keys.c.id == kid))).one()
        report = await check_ledger(conn)
    return row, balance, key, report


def test_a_cost_beyond_the_hold_is_charged_at_most_the_balance_the_rest_is_overage(database_url: str):
    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        seen: list[Any] = []
        ledger = LedgerWriter(engine, "test-instance", on_overage=seen.append)
        ledger.start()
        await ledger.hold(Hold("gen-over", uid, kid, 400_000, "m"))
        ledger.settle(Settlement("gen-over", uid, kid, 400_000, 5_000_000, "ok", Usage(10, 9_999)))
        await ledger.flush()
        row, balance, key, report = await _read(engine, "gen-over", uid, kid)
        assert balance == 0
        assert (row.state, row.cost_nanos, row.overage_nanos) == ("settled", 1_000_000, 4_000_000)
        assert (key.used_nanos, key.held_nanos) == (1_000_000, 0)
        assert [(c.charged, c.overage) for c in seen] == [(1_000_000, 4_000_000)]
        assert report.ok, report.problems
        await ledger.close()
        await engine.dispose()

    run(scenario())


def test_a_cost_beyond_the_hold_stays_within_the_keys_limit_and_spend_limits(database_url: str):
    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url, balance=10_000_000)
        async with engine.begin() as conn:
            await conn.execute(update(api_keys).where(api_keys.c.id == kid).values(limit_nanos=700_000))
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-k1", uid, kid, 200_000, "m"))
        await ledger.hold(Hold("gen-k2", uid, kid, 300_000, "m"))  # still open: its 300,000 stays reserved
        ledger.settle(Settlement("gen-k1", uid, kid, 200_000, 2_000_000, "ok"))
        await ledger.flush()
        row, _, key, report = await _read(engine, "gen-k1", uid, kid)
        assert (row.cost_nanos, row.overage_nanos) == (400_000, 1_600_000)  # 700,000 - 300,000 reserved
        assert key.used_nanos + key.held_nanos == 700_000
        assert report.ok, report.problems
        ledger.settle(Settlement("gen-k2", uid, kid, 300_000, 300_000, "ok"))
        # A daily account limit of 1,000,000 on another key's request: 700,000 is spent today already.
        _, other = await _other_key(engine, uid)
        budget = (("user", uid, "day", 1_000_000),)
        await ledger.hold(Hold("gen-d", uid, other, 100_000, "m", budgets=budget))
        ledger.settle(Settlement("gen-d", uid, other, 100_000, 900_000, "ok", budgets=budget))
        await ledger.flush()
        row, _, _, report = await _read(engine, "gen-d", uid, other)
        assert (row.cost_nanos, row.overage_nanos) == (300_000, 600_000)
        assert report.ok, report.problems
        await ledger.close()
        await engine.dispose()

    run(scenario())


async def _other_key(engine: Any, uid: int) -> tuple[str, int]:
    async with engine.begin() as conn:
        secret, key = await create_key(conn, uid)
    return secret, key["id"]


def test_a_settlement_after_the_sweeper_released_its_hold_still_charges_and_keeps_the_channel(database_url: str):
    """A paused process comes back: its hold was released meanwhile; what it delivered is charged late."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        paused = LedgerWriter(engine, "paused-instance")
        paused.start()
        await paused.hold(Hold("gen-late", uid, kid, 300_000, "m", channel_id=None, upstream_model="up-model"))
        other = LedgerWriter(engine, "other-instance")
        other.start()
        sweeper = Sweeper(engine, other, "other-instance", stale_after=0)  # every hold of a silent process is old enough
        await sweeper.register()
        assert await sweeper.sweep() == 1  # the paused process has no row: declared dead
        row, balance, _, _ = await _read(engine, "gen-late", uid, kid)
        assert (row.state, row.status, row.upstream_model, balance) == ("released", "interrupted", "up-model", 1_000_000)
        paused.settle(Settlement("gen-late", uid, kid, 300_000, 1_200_000, "ok", Usage(5, 50)))
        await paused.flush()
        row, balance, key, report = await _read(engine, "gen-late", uid, kid)
        assert (row.state, row.status, row.cost_nanos, row.overage_nanos) == ("settled", "ok", 1_000_000, 200_000)
        assert row.upstream_model == "up-model" and balance == 0 and key.held_nanos == 0
        assert report.ok, report.problems
        # The sweeper's release never resolves a hold twice, nor a late settlement.
        other.settle(Settlement("gen-late", uid, kid, 300_000, 0, "interrupted", release_only=True))
        await other.flush()
        assert (await _read(engine, "gen-late", uid, kid))[1] == 0
        # The paused process registers again at its next heartbeat.
        await Sweeper(engine, paused, "paused-instance", stale_after=30).heartbeat()
        async with engine.connect() as conn:
            assert await conn.scalar(select(instances.c.id).where(instances.c.id == "paused-instance")) == "paused-instance"
        for writer in (paused, other):
            await writer.close()
        await engine.dispose()

    run(scenario())


def test_a_young_hold_of_a_silent_process_is_not_released_yet(database_url: str):
    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        paused = LedgerWriter(engine, "silent-instance")
        paused.start()
        await paused.hold(Hold("gen-young", uid, kid, 100_000, "m"))
        live = LedgerWriter(engine, "live-instance")
        live.start()
        sweeper = Sweeper(engine, live, "live-instance", stale_after=30)
        assert await sweeper.sweep() == 0
        for writer in (paused, live):
            await writer.close()
        await engine.dispose()

    run(scenario())


def test_ledger_check_fails_on_a_negative_balance_and_a_key_past_its_limit(database_url: str):
    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        async with engine.begin() as conn:
            assert (await check_ledger(conn)).ok
            await conn.execute(update(users).where(users.c.id == uid).values(balance=-5))
            await conn.execute(update(api_keys).where(api_keys.c.id == kid).values(limit_nanos=10, used_nanos=11))
            problems = (await check_ledger(conn)).problems
        assert any("below zero" in p for p in problems)
        assert any("past its limit" in p for p in problems)
        await engine.dispose()

    run(scenario())


def test_postgres_an_outage_fails_holds_and_keeps_settlements_until_the_database_is_back(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """The connection to PostgreSQL drops (here a TCP proxy cuts it, as a failover or a network fault
    does) while the writer runs. A hold fails at once with ``storage_unavailable`` (its request is never
    served unbilled); a settlement queued meanwhile is kept and retried until the database is back, then
    charged once. A barrier caught by the outage fails too; the settlements it was to make durable are
    settled again, and change nothing, since they were committed. These are the writer's failure paths
    that a compiled wheel runs too (.ci/run runs tests/billing on it)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a connection to PostgreSQL cut under a running writer")
    from tests.support.tcp_proxy import TcpProxy
    from tokenhub.errors import ServiceUnavailable

    monkeypatch.setattr("tokenhub.billing.ledger.BARRIER_AFTER", 0.3)  # time to cut the connection before it
    proxy = TcpProxy("127.0.0.1", 5432)

    async def settled_then_back(ledger: LedgerWriter, settlement: Settlement) -> None:
        ledger.settle(settlement)
        await asyncio.sleep(0.2)  # its group has failed (and been queued again) by now
        proxy.restore()
        await asyncio.wait_for(ledger.flush(), 15)

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url.replace(":5432/", f":{proxy.port}/"))
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        store = ledger._store
        await ledger.hold(Hold("gen-a", uid, kid, 300_000, "m"))
        await ledger.hold(Hold("gen-b", uid, kid, 300_000, "m"))

        proxy.sever()  # a hold: refused at once
        with pytest.raises(ServiceUnavailable) as refused:
            await asyncio.wait_for(ledger.hold(Hold("gen-c", uid, kid, 1_000, "m")), 10)
        assert refused.value.code == "storage_unavailable"
        await settled_then_back(ledger, Settlement("gen-a", uid, kid, 300_000, 100_000, "ok", Usage(10, 20)))
        assert "ledger commit failed" in caplog.text

        ledger.settle(Settlement("gen-b", uid, kid, 300_000, 50_000, "ok", Usage(5, 5)))  # committed, not yet durable
        await ledger.flush()
        assert store.unconfirmed
        proxy.sever()  # the barrier fails
        for _ in range(200):
            if "barrier that makes settlements durable failed" in caplog.text:
                break
            await asyncio.sleep(0.01)
        proxy.restore()
        for _ in range(500):  # settled again, then made durable by the next barrier
            if not store.unconfirmed and "settled again" in caplog.text:
                break
            await asyncio.sleep(0.02)
        await asyncio.wait_for(ledger.flush(), 15)
        await asyncio.wait_for(ledger.hold(Hold("gen-d", uid, kid, 1_000, "m")), 10)  # the writer goes on
        async with engine.connect() as conn:
            states = dict((await conn.execute(select(requests.c.id, requests.c.state))).all())
            charges = (await conn.execute(select(ledger_entries.c.request_id, ledger_entries.c.amount)
                                          .where(ledger_entries.c.kind == "charge").order_by(ledger_entries.c.id))).all()
            balance = await conn.scalar(select(users.c.balance).where(users.c.id == uid))
            report = await check_ledger(conn)
        await ledger.close()
        await engine.dispose()
        assert "barrier that makes settlements durable failed" in caplog.text and "settled again" in caplog.text
        assert states == {"gen-a": "settled", "gen-b": "settled", "gen-d": "held"}  # gen-c: never held
        assert [tuple(c) for c in charges] == [("gen-a", -100_000), ("gen-b", -50_000)]  # once each
        assert balance == 1_000_000 - 100_000 - 50_000 - 1_000
        assert report.ok, report.problems

    try:
        run(scenario())
    finally:
        proxy.close()


def test_postgres_a_hold_the_server_refuses_fails_alone(database_url: str, caplog: pytest.LogCaptureFixture):
    """A value PostgreSQL itself refuses (a model name longer than its column: class 22, raised by the
    server, not the driver) rolls the group back on its connection, which serves on (no new one is opened); the group is
    committed one operation at a time, and only the refused hold fails."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's own refusal")
    from tokenhub.errors import ServiceUnavailable

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-first", uid, kid, 1_000, "m"))  # figures known: the next group checks them
        connections = set(ledger._store._open)
        beside = asyncio.create_task(ledger.hold(Hold("gen-ok", uid, kid, 1_000, "m")))
        with pytest.raises(ServiceUnavailable) as refused:
            await asyncio.wait_for(ledger.hold(Hold("gen-long", uid, kid, 1_000, "m" * 201)), 10)
        await asyncio.wait_for(beside, 10)
        assert refused.value.code == "storage_refused"
        await asyncio.wait_for(ledger.hold(Hold("gen-next", uid, kid, 1_000, "m")), 10)
        assert ledger._store._open == connections  # the refusing connection, rolled back, serves on
        async with engine.connect() as conn:
            states = dict((await conn.execute(select(requests.c.id, requests.c.state))).all())
            report = await check_ledger(conn)
        await ledger.close()
        await engine.dispose()
        assert states == {"gen-first": "held", "gen-ok": "held", "gen-next": "held"}
        assert "refused a group" in caplog.text and "StringDataRightTruncation" in caplog.text
        assert report.ok, report.problems

    run(scenario())


def test_close_stops_even_when_the_database_is_gone(database_url: str, monkeypatch: pytest.MonkeyPatch):
    """A settlement the database refuses for good (it was dropped) is retried until CLOSE_DEADLINE, then
    left held, as after a crash: stopping never hangs."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL database can be dropped under a running writer")
    import time

    from tests.support.harness import drop_pg_database
    from tokenhub.billing import ledger as ledger_module

    monkeypatch.setattr(ledger_module, "CLOSE_DEADLINE", 1.0)

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-gone", uid, kid, 300_000, "m"))
        await engine.dispose()
        await asyncio.to_thread(drop_pg_database, database_url.rsplit("/", 1)[1])
        ledger.settle(Settlement("gen-gone", uid, kid, 300_000, 100_000, "ok"))
        started = time.monotonic()
        await ledger.close()
        assert time.monotonic() - started < 5

    run(scenario())


def _log_frames(path: str) -> int:
    """Frames in the write-ahead log now, read without touching it: ``mxFrame`` of the WAL-index header at
    the start of the -shm file (SQLite's file format, "the WAL-index format"; native byte order)."""
    with open(path + "-shm", "rb") as f:
        return int.from_bytes(f.read(20)[16:20], sys.byteorder)


class _Traffic:
    """Requests as the ledger store sees them, numbered: a hold, then its settlement (two groups)."""

    def __init__(self, uid: int, kid: int) -> None:
        self.uid, self.kid, self.served = uid, kid, 0

    async def serve_one(self, store: SqliteLedgerStore) -> None:
        self.served += 1
        rid = f"gen-{self.served}"
        await store.commit([Hold(rid, self.uid, self.kid, 1_000, "m")])
        await store.commit([Settlement(rid, self.uid, self.kid, 1_000, 700, "ok", Usage(3, 4))])


def test_the_sqlite_log_starts_over_under_steady_commits(sqlite_url: str):
    """Checkpoints run beside the commits, yet the write-ahead log does not grow with the traffic:
    after a checkpoint the next group makes the log start over (it grew without end before)."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(sqlite_url)
        path = engine.url.database
        store = SqliteLedgerStore(path, "test-instance")
        store.catch_up_bytes = 1_000_000  # (64 MB in service) a round of the traffic below writes a few MB
        frames: list[tuple[int, int]] = []
        traffic = _Traffic(uid, kid)

        async def serve_one() -> None:
            await traffic.serve_one(store)

        for _ in range(6):
            for _ in range(40):
                await serve_one()
            before = _log_frames(path)
            checkpoint = asyncio.create_task(store.checkpoint())  # in the worker thread, beside the commits
            await asyncio.sleep(0)
            while not checkpoint.done():
                await serve_one()
                await asyncio.sleep(0)
            await checkpoint
            await serve_one()  # the group after the checkpoint
            frames.append((before, _log_frames(path)))
        await store.close()
        async with engine.connect() as conn:
            report = await check_ledger(conn)
            balance = await conn.scalar(select(users.c.balance).where(users.c.id == uid))
        await engine.dispose()
        assert report.ok, report.problems
        assert balance == 1_000_000 - traffic.served * 700
        # After each round the log holds only what followed its start-over: fewer frames than the round
        # wrote before its checkpoint (without the start-over it held everything since the first commit).
        assert all(after < before for before, after in frames), frames

    run(scenario())


def test_the_sqlite_log_starts_over_with_two_processes_committing(sqlite_url: str):
    """Two writers on one file (two processes' ledgers): the group that finishes one's checkpoint holds
    the other off until the log is whole in the database, so the log starts over all the same. The
    catch-up gives up after ``CATCH_UP_WAIT_MS`` if the other keeps the file busy that long (a stall of
    the machine did, once in a CI run), and the next checkpoint tries again: one round of six may miss,
    never the next one too (a passive catch-up, before, missed every round)."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(sqlite_url)
        path = engine.url.database
        a, b = SqliteLedgerStore(path, "process-a"), SqliteLedgerStore(path, "process-b")
        a.catch_up_bytes = 1_000_000
        frames: list[tuple[int, int]] = []
        serve_one = _Traffic(uid, kid).serve_one

        async def beside(task: asyncio.Task[None], store: SqliteLedgerStore, most: int) -> None:
            # At most `most` requests beside it: back to back without end, one connection's inline commits
            # would keep SQLite's write lock from the other's sleeping busy handler (not how load looks).
            await asyncio.sleep(0)
            for _ in range(most):
                if task.done():
                    break
                await serve_one(store)
                await asyncio.sleep(0)
            await task

        for _ in range(6):
            for i in range(40):
                await serve_one((a, b)[i % 2])
            before = _log_frames(path)
            await beside(asyncio.create_task(a.checkpoint()), b, 50)
            await beside(asyncio.create_task(serve_one(a)), b, 5)  # a's group after the checkpoint, b committing
            frames.append((before, _log_frames(path)))
        await a.close()
        await b.close()
        async with engine.connect() as conn:
            report = await check_ledger(conn)
        await engine.dispose()
        assert report.ok, report.problems
        started_over = [after < before for before, after in frames]
        assert started_over.count(False) <= 1 and started_over[-1], frames

    run(scenario())


def test_an_upstream_text_the_database_would_refuse_does_not_stop_the_ledger(database_url: str):
    """What an upstream said is stored with the settlement (its error message, finish reason); PostgreSQL
    text cannot hold U+0000 nor a finish reason longer than its column, and one such settlement must not
    make every later group fail."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-nul", uid, kid, 300_000, "m"))
        ledger.settle(Settlement("gen-nul", uid, kid, 300_000, 1_000, "upstream_error", Usage(1, 1), error="bad\x00news",
                                 finish_reason="stop\x00" + "x" * 40))
        await asyncio.wait_for(ledger.flush(), 5)
        await asyncio.wait_for(ledger.hold(Hold("gen-next", uid, kid, 1_000, "m")), 5)  # the ledger goes on
        async with engine.connect() as conn:
            row = (await conn.execute(select(requests.c.state, requests.c.error, requests.c.finish_reason)
                                      .where(requests.c.id == "gen-nul"))).one()
            report = await check_ledger(conn)
        assert tuple(row) == ("settled", "badnews", "stop" + "x" * 28)  # the column holds 32 characters
        assert report.ok, report.problems
        await ledger.close()
        await engine.dispose()

    run(scenario())


def test_an_upstream_text_is_stored_as_it_came_whatever_its_quotes(database_url: str):
    """PostgreSQL's write goes out with its COMMIT as one simple query, its rows as quoted literals: an
    upstream's error text with quotes, backslashes, dollar quotes and SQL of its own is stored as it came,
    and nothing else runs."""
    hostile = "it's \\' \\\\'' $$ $x$ \";'); DROP TABLE users; -- \n\t\u2028 ☃ 𝄞 \\u0027 E'\\x41'"

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-q'uote", uid, kid, 300_000, "m'odel"))
        ledger.settle(Settlement("gen-q'uote", uid, kid, 300_000, 1_000, "upstream_error", Usage(1, 1), error=hostile,
                                 upstream_model="up'stream\\"))
        await asyncio.wait_for(ledger.flush(), 5)
        async with engine.connect() as conn:
            row = (await conn.execute(select(requests.c.state, requests.c.error, requests.c.model, requests.c.upstream_model)
                                      .where(requests.c.id == "gen-q'uote"))).one()
            balance = await conn.scalar(select(users.c.balance).where(users.c.id == uid))
            report = await check_ledger(conn)
        assert tuple(row) == ("settled", hostile, "m'odel", "up'stream\\")
        assert balance == 1_000_000 - 1_000
        assert report.ok, report.problems
        await ledger.close()
        await engine.dispose()

    run(scenario())


def test_flags_and_absent_values_are_stored_as_the_database_types_them(database_url: str):
    """A hold's ``stream`` and a settlement's ``estimated`` are booleans, its error and tool uses absent: read
    back as booleans and NULL (on SQLite, where the store registers sqlite3 adapters for them, as the integers
    and NULLs sqlite3 binds without adapters)."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-flags", uid, kid, 300_000, "m", stream=True))
        await ledger.hold(Hold("gen-plain", uid, kid, 300_000, "m"))
        ledger.settle(Settlement("gen-flags", uid, kid, 300_000, 1_000, "ok", Usage(1, 1, estimated=True)))
        ledger.settle(Settlement("gen-plain", uid, kid, 300_000, 1_000, "ok", Usage(1, 1)))
        await asyncio.wait_for(ledger.flush(), 5)
        columns = (requests.c.id, requests.c.stream, requests.c.estimated, requests.c.error, requests.c.tool_uses)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(*columns).order_by(requests.c.id))).all()
            if engine.dialect.name == "sqlite":
                raw = (await conn.exec_driver_sql(
                    "SELECT typeof(stream), stream, typeof(estimated), estimated, typeof(error), typeof(tool_uses)"
                    " FROM requests ORDER BY id")).all()  # fmt: skip
                assert [tuple(r) for r in raw] == [("integer", 1, "integer", 1, "null", "null"),
                                                   ("integer", 0, "integer", 0, "null", "null")]
        assert [tuple(r) for r in rows] == [("gen-flags", True, True, None, None), ("gen-plain", False, False, None, None)]
        await ledger.close()
        await engine.dispose()

    run(scenario())


def test_the_postgres_ledger_plans_reach_rows_by_index_however_small_the_tables(database_url: str):
    """asyncpg keeps a prepared statement's generic plan while the tables grow. Made on a new, empty
    database, a plan that scans a table (or joins a whole index by hashing it) gets slower with every
    request: the ledger's statements must reach their rows one by one through an index."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's planner")
    import asyncpg

    from tokenhub.billing import ledger_store

    async def scenario() -> None:
        engine, _, _ = await _setup(database_url)
        await engine.dispose()
        conn = await asyncpg.connect(database_url, server_settings=ledger_store._PG_SETTINGS)
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            statements = {
                "lock": (ledger_store._PG_LOCK, "int[], text[]", "ARRAY[1], ARRAY['gen-a']"),
                "spent": (ledger_store._PG_SPENT, "text, int, text", "'key', 1, '2026-12-01'"),
                **{  # the write's two statements, as each connection prepares them
                    name: (sql, types, values)
                    for (name, (types, sql)), values in zip(
                        ledger_store._PG_PREPARED.items(),
                        ("now(), '[]', '[{\"id\": \"gen-a\"}]', 'i'",
                         "now(), '[]', '[{\"id\": 1}]', '[{\"id\": 1}]', '[{\"scope\": \"key\", \"ident\": 1, \"period\": \"day\", "
                         "\"start\": \"2026-12-07\", \"amount\": 1}]'"),
                    )
                },
            }
            for name, (sql, types, values) in statements.items():
                await conn.execute(f"PREPARE {name}({types}) AS {sql}")
                plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE {name}({values})"))
                for scan in ("Seq Scan", "Hash Join", "Merge Join"):
                    assert scan not in plan, f"{name}:\n{plan}"
        finally:
            await conn.close()

    run(scenario())


def test_the_postgres_check_of_a_groups_settlements_reads_only_them_however_many_holds_are_open(database_url: str):
    """A group planned on the figures this process knows checks that the requests it settles are still
    held. With thousands of streams open, a plan that reaches them through the index of open holds reads
    every one of them, in every group: the check must read its own requests by primary key."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's planner")
    import asyncpg

    from tokenhub.billing import ledger_store

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url, balance=10**12)
        store = ledger_store.store_for(engine, "proc-open-holds")
        await store.commit([Hold(f"gen-open-{i:05d}", uid, kid, 10, "m") for i in range(3000)])  # streams in flight
        await store.close()
        await engine.dispose()
        conn = await asyncpg.connect(database_url, server_settings=ledger_store._PG_SETTINGS)  # as plpgsql plans it: generic
        try:
            await conn.execute(f"PREPARE still_held(json) AS {ledger_store._PG_STILL_HELD}")
            async with conn.transaction():
                assert await conn.fetchval("""EXECUTE still_held('["gen-open-00007", "gen-open-02999", "gen-none"]')""") == 2
                plan = "\n".join(r[0] for r in await conn.fetch("""EXPLAIN (ANALYZE, BUFFERS) EXECUTE still_held('["gen-open-00007"]')"""))
            assert "requests_pkey" in plan and "ix_requests_held" not in plan, plan
        finally:
            await conn.close()

    run(scenario())


def test_a_settlement_the_database_refuses_does_not_stop_the_others(database_url: str, caplog: pytest.LogCaptureFixture):
    """Values no column can hold (an integer beyond 64 bits): the group is committed one operation at a
    time, the refused settlement is stored with its money alone, or as a release charging nothing, and
    the holds beside it go through; the writer goes on."""

    async def scenario() -> None:
        engine, uid, kid = await _setup(database_url)
        ledger = LedgerWriter(engine, "test-instance")
        ledger.start()
        await ledger.hold(Hold("gen-x", uid, kid, 300_000, "m"))
        await ledger.hold(Hold("gen-y", uid, kid, 300_000, "m"))
        ledger.settle(Settlement("gen-x", uid, kid, 300_000, 100_000, "ok", Usage(10, 20), channel_id=10**20))
        ledger.settle(Settlement("gen-y", uid, kid, 300_000, 10**20, "ok", Usage(10, 20)))  # its overage: 10^20
        beside = asyncio.create_task(ledger.hold(Hold("gen-a", uid, kid, 1_000, "m")))  # the same group
        await asyncio.wait_for(ledger.flush(), 10)
        await beside
        await asyncio.wait_for(ledger.hold(Hold("gen-b", uid, kid, 1_000, "m")), 5)  # and the next group
        async with engine.connect() as conn:
            rows = {r.id: r for r in await conn.execute(select(requests))}
            balance = await conn.scalar(select(users.c.balance).where(users.c.id == uid))
            report = await check_ledger(conn)
        await ledger.close()
        await engine.dispose()
        x, y = rows["gen-x"], rows["gen-y"]
        assert (x.state, x.cost_nanos, x.channel_id, x.prompt_tokens) == ("settled", 100_000, None, 0)  # money only
        assert (y.state, y.status, y.cost_nanos) == ("released", "error", 0)  # nothing charged
        assert rows["gen-a"].state == rows["gen-b"].state == "held"
        assert balance == 1_000_000 - 100_000 - 2_000
        assert report.ok, report.problems
        assert "refused a group" in caplog.text

    run(scenario())
