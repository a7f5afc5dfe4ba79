"""The one charge context (billing/bill.py), on both databases: hold on entry, settle exactly once on exit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from tokenhub.accounts.service import create_key, create_user
from tokenhub.billing.bill import Bill
from tokenhub.billing.ledger import Hold, LedgerWriter, Settlement
from tokenhub.billing.service import add_credits, check_ledger, credits_summary
from tokenhub.config import normalize_database_url
from tokenhub.errors import InsufficientCredits, UpstreamError
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine
from tokenhub.storage.tables import requests
from tokenhub.tokens import Usage


async def _setup(url: str, balance: int = 1_000_000) -> tuple[Any, LedgerWriter, int, int]:
    engine = create_engine(normalize_database_url(url))
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        user = await create_user(conn, "bill@example.com")
        await add_credits(conn, user["id"], balance)
        _, key = await create_key(conn, user["id"])
    ledger = LedgerWriter(engine, "test-instance")
    ledger.start()
    return engine, ledger, user["id"], key["id"]


async def _row(engine: Any, request_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(requests).where(requests.c.id == request_id))).one()


async def _finish(engine: Any, ledger: LedgerWriter, uid: int) -> dict[str, Any]:
    await ledger.flush()
    async with engine.connect() as conn:
        summary = await credits_summary(conn, uid)
        report = await check_ledger(conn)
    assert report.ok, report.problems
    await ledger.close()
    await engine.dispose()
    return summary


def test_an_answer_settles_once_with_what_the_bill_recorded(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url)
        settled: list[Settlement] = []
        hold = Hold("gen-ok", uid, kid, 400_000, "m", channel_id=None, upstream_model="first")
        async with Bill(ledger, hold, prices='{"input": 1}', on_settled=settled.append) as bill:
            assert bill.upstream_model == "first"  # the hold's route until the call moves it
            bill.upstream_model = "second"  # a failover answered
            bill.status, bill.cost, bill.usage, bill.http_status = "ok", 123_456, Usage(10, 20), 200
        assert [s.cost for s in settled] == [123_456] and settled[0].hold == 400_000
        await ledger.flush()
        row = await _row(engine, "gen-ok")
        summary = await _finish(engine, ledger, uid)
        assert (row.state, row.status, row.cost_nanos, row.upstream_model, row.prompt_tokens) == ("settled", "ok", 123_456, "second", 10)
        assert row.prices == '{"input": 1}' and row.latency_ms is not None
        assert summary["balance_nanos"] == 1_000_000 - 123_456

    asyncio.run(scenario())


def test_a_failure_settles_once_and_charges_nothing_unless_a_cost_was_set(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url)
        settled: list[Settlement] = []
        with pytest.raises(UpstreamError):
            async with Bill(ledger, Hold("gen-fail", uid, kid, 300_000, "m"), on_settled=settled.append) as bill:
                bill.error = "boom"
                raise UpstreamError("boom")
        with pytest.raises(asyncio.CancelledError):
            async with Bill(ledger, Hold("gen-cut", uid, kid, 300_000, "m"), on_settled=settled.append) as bill:
                bill.status, bill.cost = "client_closed", 5_000  # what was delivered before the client left
                raise asyncio.CancelledError
        assert [(s.request_id, s.status, s.cost) for s in settled] == [("gen-fail", "error", 0), ("gen-cut", "client_closed", 5_000)]
        await ledger.flush()
        assert (await _row(engine, "gen-fail")).error == "boom"
        summary = await _finish(engine, ledger, uid)
        assert summary["balance_nanos"] == 1_000_000 - 5_000

    asyncio.run(scenario())


def test_a_refused_hold_settles_nothing(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url, balance=1_000)
        settled: list[Settlement] = []
        entered = False
        with pytest.raises(InsufficientCredits):
            async with Bill(ledger, Hold("gen-poor", uid, kid, 5_000, "m"), on_settled=settled.append):
                entered = True
        assert not entered and settled == []
        summary = await _finish(engine, ledger, uid)
        assert summary["balance_nanos"] == 1_000

    asyncio.run(scenario())


def test_a_handed_over_hold_is_left_to_its_new_owner(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url)
        settled: list[Settlement] = []
        async with Bill(ledger, Hold("task-1", uid, kid, 200_000, "m", endpoint="video"), on_settled=settled.append) as bill:
            bill.hand_over()  # the poller settles it when the task ends
        await ledger.flush()
        assert settled == [] and (await _row(engine, "task-1")).state == "held"
        ledger.settle(Settlement("task-1", uid, kid, 200_000, 150_000, "ok"))  # the new owner, exactly once
        summary = await _finish(engine, ledger, uid)
        assert summary["balance_nanos"] == 1_000_000 - 150_000

    asyncio.run(scenario())


def test_a_durable_bill_has_committed_its_release_when_the_error_leaves(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url)
        with pytest.raises(UpstreamError):
            async with Bill(ledger, Hold("gen-durable", uid, kid, 250_000, "m"), durable=True):
                raise UpstreamError("the submit failed")
        assert (await _row(engine, "gen-durable")).state == "released"  # committed before the error left
        summary = await _finish(engine, ledger, uid)
        assert summary["balance_nanos"] == 1_000_000

    asyncio.run(scenario())


async def _seen(ledger: LedgerWriter, uid: int, kid: int) -> None:
    """One request through ``ledger``, so its process has seen the account's figures (``covers``)."""
    async with Bill(ledger, Hold("gen-first", uid, kid, 1_000, "m")) as bill:
        bill.status = "ok"
    await ledger.flush()  # its settlement too: the figures seen are the account's whole balance


def test_an_early_bill_goes_on_before_its_hold_commits_and_settles_after_it(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url)
        first = Hold("gen-unseen", uid, kid, 100_000, "m")
        async with Bill(ledger, first, early=True):  # an account this process has not seen: the hold commits first
            assert first.future is not None and first.future.done()
        await _seen(ledger, uid, kid)
        held: list[str] = []
        settled: list[Settlement] = []
        hold = Hold("gen-early", uid, kid, 200_000, "m")
        async with Bill(ledger, hold, early=True, on_held=lambda: held.append("held"), on_settled=settled.append) as bill:
            assert hold.future is not None and not hold.future.done()  # the call goes on while the hold commits
            bill.status, bill.cost = "ok", 150_000
        assert settled == [] and held == []  # ended before the commit: settles once the hold is in
        await ledger.flush()
        await ledger.flush()  # the settlement queued when the hold committed
        assert held == ["held"] and [s.cost for s in settled] == [150_000]
        row = await _row(engine, "gen-early")
        summary = await _finish(engine, ledger, uid)
        assert (row.state, row.cost_nanos) == ("settled", 150_000)
        assert summary["balance_nanos"] == 1_000_000 - 150_000

    asyncio.run(scenario())


def test_an_early_hold_refused_after_all_holds_and_settles_nothing(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url)
        await _seen(ledger, uid, kid)
        other = LedgerWriter(engine, "other-instance")  # another process spends the account meanwhile
        other.start()
        await other.hold(Hold("gen-elsewhere", uid, kid, 900_000, "m"))
        held: list[str] = []
        settled: list[Settlement] = []
        hold = Hold("gen-refused", uid, kid, 200_000, "m")
        async with Bill(ledger, hold, early=True, on_held=lambda: held.append("held"), on_settled=settled.append) as bill:
            assert not hold.future.done()  # this process's figures said it would fit
            with pytest.raises(InsufficientCredits):
                await bill.confirmed()
            assert isinstance(await bill.refusal(), InsufficientCredits)
            bill.status = "error"
        await ledger.flush()
        assert held == [] and settled == []
        async with engine.connect() as conn:
            assert (await conn.execute(select(requests.c.id).where(requests.c.id == "gen-refused"))).first() is None
        other.settle(Settlement("gen-elsewhere", uid, kid, 900_000, 0, "ok"))
        await other.close()
        summary = await _finish(engine, ledger, uid)
        assert summary["balance_nanos"] == 1_000_000

    asyncio.run(scenario())


def test_an_early_bill_waits_where_its_hold_might_not_fit(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url)
        await _seen(ledger, uid, kid)
        balance = 1_000_000
        # Twice over what is left after the holds this process has queued: the room for another process's spending.
        assert ledger.covers(Hold("a", uid, kid, balance // 2, "m"))
        assert not ledger.covers(Hold("b", uid, kid, balance // 2 + 1, "m"))
        ledger.queue_hold(pending := Hold("gen-pending", uid, kid, 300_000, "m"))
        assert ledger.covers(Hold("c", uid, kid, (balance - 300_000) // 2, "m"))
        assert not ledger.covers(Hold("d", uid, kid, (balance - 300_000) // 2 + 1, "m"))
        assert not ledger.covers(Hold("e", uid, kid, 1, "m", budgets=(("key", kid, "day", 10**12),)))  # a query at commit
        assert not ledger.covers(Hold("f", uid, kid + 1, 1, "m"))  # a key not seen here
        await pending.future
        ledger.settle(Settlement("gen-pending", uid, kid, 300_000, 0, "ok"))
        await _finish(engine, ledger, uid)

    asyncio.run(scenario())


def test_an_early_bill_respects_the_keys_room_as_last_seen(database_url: str) -> None:
    async def scenario() -> None:
        engine, ledger, uid, kid = await _setup(database_url)
        async with engine.begin() as conn:
            _, key = await create_key(conn, uid, limit_nanos=100_000)
        await _seen(ledger, uid, key["id"])  # used 0 of 100,000 (the first request cost nothing)
        assert ledger.covers(Hold("a", uid, key["id"], 50_000, "m"))
        assert not ledger.covers(Hold("b", uid, key["id"], 50_001, "m"))  # the balance would, the key's limit not twice
        await _finish(engine, ledger, uid)

    asyncio.run(scenario())
