"""Redemption codes on both databases: single use under real concurrency, no oracle, hashes only."""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Awaitable, Callable

import pytest
from sqlalchemy import func, select

from tokenhub.accounts.service import create_user
from tokenhub.billing import codes
from tokenhub.billing.service import check_ledger
from tokenhub.config import normalize_database_url
from tokenhub.errors import InvalidRequest
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine, utc_now
from tokenhub.storage.tables import ledger_entries, redemption_codes, users

DOLLAR = 10**9


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _setup(url: str, n_users: int = 1):
    engine = create_engine(normalize_database_url(url))
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        admin = await create_user(conn, "ops@example.com", is_admin=True)
        uids = [(await create_user(conn, f"u{i}@example.com"))["id"] for i in range(n_users)]
    return engine, admin["id"], uids


def concurrently(url: str, jobs: list[Callable[[Any], Awaitable[Any]]]) -> list[Any]:
    """Run each job in its own thread, event loop, engine and transaction, released together."""
    barrier = threading.Barrier(len(jobs))

    def worker(job: Callable[[Any], Awaitable[Any]]) -> Any:
        async def go() -> Any:
            engine = create_engine(normalize_database_url(url), pool_size=1)
            try:
                async with engine.connect() as warm:  # open the connection before the start line
                    await warm.scalar(select(1))
                barrier.wait(30)
                try:
                    async with engine.begin() as conn:
                        return await job(conn)
                except InvalidRequest as exc:
                    return exc
            finally:
                await engine.dispose()

        return asyncio.run(go())

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(worker, jobs))


async def _redeem_entries(engine) -> list[Any]:
    async with engine.connect() as conn:
        return (await conn.execute(select(ledger_entries).where(ledger_entries.c.kind == "redeem"))).all()


async def _ledger_ok(engine) -> None:
    async with engine.connect() as conn:
        report = await check_ledger(conn)
    assert report.ok, report.problems


def test_code_format_and_entropy():
    code = codes.new_code()
    assert re.fullmatch(r"THC-[23456789A-HJ-NP-Z]{4}(-[23456789A-HJ-NP-Z]{4}){3}", code)
    assert len(codes.ALPHABET) == 32 and not set("01IO") & set(codes.ALPHABET)
    assert len(codes.ALPHABET) ** codes.CODE_SYMBOLS >= 2**80
    assert len({codes.new_code() for _ in range(2000)}) == 2000
    # What people type: any case, spaces, missing dashes or prefix.
    compact = code.replace("-", "")[3:]
    assert codes.normalize_code(f"  {code.lower()} ") == code
    assert codes.normalize_code(compact) == code
    assert codes.normalize_code(" ".join(compact[i : i + 4] for i in range(0, 16, 4))) == code
    assert codes.normalize_code("THC-0000-0000-0000-0000") is None  # not in the alphabet
    assert codes.normalize_code("THC-AAAA") is None


def test_a_batch_stores_only_hashes_and_lists_who_redeemed(database_url: str):
    async def scenario() -> None:
        engine, admin, (alice, _bob) = await _setup(database_url, 2)
        expires = utc_now() + timedelta(days=30)
        async with engine.begin() as conn:
            batch = await codes.create_batch(conn, 5 * DOLLAR, 3, expires_at=expires, label="launch <promo>", created_by=admin)
        assert len(batch) == 3 and len(set(batch)) == 3 and batch.batch_id.startswith("bat_")
        async with engine.connect() as conn:
            stored = [tuple(str(v) for v in row) for row in await conn.execute(select(redemption_codes))]
        for code in batch:
            assert not any(code in value or code.replace("-", "") in value for row in stored for value in row)
        assert {row[1] for row in stored} == {codes.hash_code(code) for code in batch}

        async with engine.begin() as conn:
            assert await codes.redeem(conn, alice, batch[0].lower()) == 5 * DOLLAR
        async with engine.connect() as conn:
            listed = await codes.list_codes(conn, batch.batch_id)
            batches = await codes.list_batches(conn)
            balance = await conn.scalar(select(users.c.balance).where(users.c.id == alice))
            entry = (await conn.execute(select(ledger_entries).where(ledger_entries.c.kind == "redeem"))).one()
        assert balance == 5 * DOLLAR and entry.amount == 5 * DOLLAR and batch[0][:8] in entry.note
        redeemed = [c for c in listed if c["redeemed_by"] is not None]
        assert [(c["redeemed_by"], c["redeemed_by_email"], c["code_prefix"]) for c in redeemed] == [
            (alice, "u0@example.com", batch[0][:8] + "…")
        ]
        assert redeemed[0]["redeemed_at"] is not None and listed[0]["expires_at"] == expires
        assert batches[0]["batch_id"] == batch.batch_id
        assert (batches[0]["count"], batches[0]["redeemed"], batches[0]["disabled"]) == (3, 1, 0)
        assert batches[0]["label"] == "launch <promo>" and batches[0]["amount_nanos"] == 5 * DOLLAR
        await _ledger_ok(engine)
        await engine.dispose()

    run(scenario())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount_nanos": 0, "count": 1},
        {"amount_nanos": -5, "count": 1},
        {"amount_nanos": DOLLAR, "count": 0},
        {"amount_nanos": DOLLAR, "count": codes.MAX_BATCH + 1},
        {"amount_nanos": DOLLAR, "count": 1, "label": "x" * 201},
    ],
)
def test_create_batch_refuses_bad_input(sqlite_url: str, kwargs: dict[str, Any]):
    async def scenario() -> None:
        engine, _, _ = await _setup(sqlite_url, 0)
        with pytest.raises(InvalidRequest):
            async with engine.begin() as conn:
                await codes.create_batch(conn, **kwargs)
        with pytest.raises(InvalidRequest):
            async with engine.begin() as conn:
                await codes.create_batch(conn, DOLLAR, 1, expires_at=utc_now() - timedelta(seconds=1))
        await engine.dispose()

    run(scenario())


def test_thirty_users_redeeming_one_code_at_once_credit_exactly_once(database_url: str):
    async def setup():
        engine, _, uids = await _setup(database_url, 30)
        async with engine.begin() as conn:
            (code,) = await codes.create_batch(conn, 7 * DOLLAR, 1)
        await engine.dispose()  # the workers and the check run on other event loops
        return uids, code

    uids, code = run(setup())

    def job(uid: int):
        return lambda conn: codes.redeem(conn, uid, code)

    results = concurrently(database_url, [job(uid) for uid in uids])
    credited = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, InvalidRequest)]
    assert credited == [7 * DOLLAR]
    assert len(refused) == 29 and all(r.code == "invalid_code" for r in refused)

    async def check() -> None:
        engine = create_engine(normalize_database_url(database_url))
        entries = await _redeem_entries(engine)
        assert len(entries) == 1 and entries[0].amount == 7 * DOLLAR
        async with engine.connect() as conn:
            total = await conn.scalar(select(func.sum(users.c.balance)))
            row = (await conn.execute(select(redemption_codes))).one()
        assert total == 7 * DOLLAR and row.redeemed_by == entries[0].user_id
        await _ledger_ok(engine)
        await engine.dispose()

    run(check())


def test_one_user_submitting_a_code_twice_at_once_is_credited_once(database_url: str):
    async def setup():
        engine, _, (uid,) = await _setup(database_url, 1)
        async with engine.begin() as conn:
            (code,) = await codes.create_batch(conn, 3 * DOLLAR, 1)
        await engine.dispose()
        return uid, code

    uid, code = run(setup())
    results = concurrently(database_url, [lambda conn: codes.redeem(conn, uid, code) for _ in range(10)])
    assert [r for r in results if isinstance(r, int)] == [3 * DOLLAR]
    assert sum(isinstance(r, InvalidRequest) for r in results) == 9

    async def check() -> None:
        engine = create_engine(normalize_database_url(database_url))
        assert len(await _redeem_entries(engine)) == 1
        async with engine.connect() as conn:
            assert await conn.scalar(select(users.c.balance).where(users.c.id == uid)) == 3 * DOLLAR
        await _ledger_ok(engine)
        await engine.dispose()

    run(check())


def test_used_expired_disabled_unknown_and_malformed_codes_get_one_uniform_error(database_url: str):
    async def scenario() -> None:
        engine, _, (uid, other) = await _setup(database_url, 2)
        now = utc_now()
        async with engine.begin() as conn:
            (used,) = await codes.create_batch(conn, DOLLAR, 1)
            (expiring,) = await codes.create_batch(conn, DOLLAR, 1, expires_at=now + timedelta(hours=1))
            disabled_batch = await codes.create_batch(conn, DOLLAR, 2)
            (single,) = await codes.create_batch(conn, DOLLAR, 1)
        async with engine.begin() as conn:
            assert await codes.redeem(conn, other, used) == DOLLAR
            assert await codes.disable_codes(conn, batch_id=disabled_batch.batch_id) == 2
            single_id = await conn.scalar(select(redemption_codes.c.id).where(redemption_codes.c.code_hash == codes.hash_code(single)))
            assert await codes.disable_codes(conn, code_id=single_id) == 1

        attempts = {
            "used": (used, None),
            "expired": (expiring, now + timedelta(hours=2)),
            "disabled": (disabled_batch[0], None),
            "disabled single": (single, None),
            "unknown": (codes.new_code(), None),
            "malformed": ("THC-HELLO", None),
            "empty": ("", None),
        }
        messages = set()
        for name, (code, when) in attempts.items():
            with pytest.raises(InvalidRequest) as info:
                async with engine.begin() as conn:
                    await codes.redeem(conn, uid, code, now=when)
            assert info.value.code == "invalid_code", name
            messages.add(info.value.message)
        assert len(messages) == 1  # no oracle: every refusal reads the same

        # Before its expiry the same code works.
        async with engine.begin() as conn:
            assert await codes.redeem(conn, uid, expiring, now=now + timedelta(minutes=59)) == DOLLAR
        async with engine.connect() as conn:
            assert await conn.scalar(select(users.c.balance).where(users.c.id == uid)) == DOLLAR
            batches = {b["batch_id"]: b for b in await codes.list_batches(conn)}
        assert batches[disabled_batch.batch_id]["disabled"] == 2
        assert len(await _redeem_entries(engine)) == 2
        await _ledger_ok(engine)
        await engine.dispose()

    run(scenario())
