"""A stateful property test of the money invariants, on a real database with two ledger writers.

Hypothesis drives random holds, settlements (costs up to several times their hold: an upstream that
reports more than was possible), releases, sweeps followed by late settlements, refunds and top-ups,
some of them concurrently through two writers (two "processes" sharing the database), and checks
after every step that:

* no balance is below zero and every balance equals the sum of its ledger entries;
* no key is past its total limit, and no key passes its daily spend limit;
* ``tokenhub ledger check`` passes;
* money is conserved: credits in = balance + open holds + charges, and each request's charge plus
  its overage is exactly the cost its settlement reported.

On PostgreSQL the two writers, the top-ups and the sweeps change each other's figures, so groups
commit both ways: in one round trip on the figures a writer knows, and by locking and reading after
its check found them changed (``KnownFigures``).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Coroutine
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule
from sqlalchemy import func, select

from tokenhub.accounts.service import create_key, create_user
from tokenhub.billing.ledger import Hold, LedgerWriter, Settlement
from tokenhub.billing.ledger_store import PostgresLedgerStore
from tokenhub.billing.service import add_credits, check_ledger
from tokenhub.config import normalize_database_url
from tokenhub.errors import GatewayError, InvalidRequest
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine, utc_now
from tokenhub.storage.tables import api_keys, ledger_entries, requests, users

KEY_LIMIT = 3_000_000
DAY_LIMIT = 2_500_000
amounts = st.integers(min_value=0, max_value=1_500_000)


class Loop:
    """One event loop in a thread, shared by every example: the engine and the writers live on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class World:
    def __init__(self, url: str) -> None:
        self.loop = Loop()
        self.engine = create_engine(normalize_database_url(url))
        self.loop.run(migrate.upgrade(self.engine))
        self.writers = [LedgerWriter(self.engine, "writer-a"), LedgerWriter(self.engine, "writer-b")]

        async def start() -> None:
            for writer in self.writers:
                writer.start()

        self.loop.run(start())
        self.users = itertools.count()
        self.ids = itertools.count()

    def close(self) -> None:
        async def stop() -> None:
            for writer in self.writers:
                await writer.close()
            await self.engine.dispose()

        self.loop.run(stop())
        self.loop.close()


class Money(RuleBasedStateMachine):
    """One account per example, with a key limited in total and a key limited per day."""

    world: World
    holds = Bundle("holds")

    @initialize(credit=st.integers(min_value=0, max_value=4_000_000))
    def open_account(self, credit: int) -> None:
        w = self.world

        async def setup() -> tuple[int, int, int]:
            async with w.engine.begin() as conn:
                user = await create_user(conn, f"p{next(w.users)}@example.com")
                if credit:
                    await add_credits(conn, user["id"], credit)
                _, total_key = await create_key(conn, user["id"], limit_nanos=KEY_LIMIT)
                _, daily_key = await create_key(conn, user["id"])
            return user["id"], total_key["id"], daily_key["id"]

        self.uid, self.total_key, self.daily_key = w.loop.run(setup())
        self.credited = credit  # money in, net of refunds
        self.costs: dict[str, int] = {}  # request id -> the cost its settlement reported

    def _hold_op(self, amount: int, daily: bool) -> Hold:
        key = self.daily_key if daily else self.total_key
        budgets = (("key", key, "day", DAY_LIMIT),) if daily else ()
        return Hold(f"gen-p{next(self.world.ids)}", self.uid, key, amount, "m", budgets=budgets)

    def _settlement(self, hold: Hold, cost: int, *, release_only: bool = False) -> Settlement:
        # As a request's bill makes it (it knows the day its hold was committed), or the sweeper (which does not).
        return Settlement(hold.request_id, self.uid, hold.key_id, hold.amount, cost, "ok" if cost else "interrupted",
                          release_only=release_only, budgets=hold.budgets, held_on=None if release_only else hold.held_on)

    async def _try_hold(self, writer: LedgerWriter, hold: Hold) -> Hold | None:
        try:
            await writer.hold(hold)
        except GatewayError:
            return None
        return hold

    @rule(target=holds, amount=amounts, daily=st.booleans(), writer=st.sampled_from([0, 1]))
    def hold(self, amount: int, daily: bool, writer: int) -> Hold:
        # A refused hold joins the bundle too (its settlement is then a no-op: there is no request to
        # resolve), so what Hypothesis draws next never depends on how concurrent commits interleaved.
        op = self._hold_op(amount, daily)
        self.world.loop.run(self._try_hold(self.world.writers[writer], op))
        return op

    @rule(hold=consumes(holds), factor=st.sampled_from([0, 0.5, 1, 2, 7]), writer=st.sampled_from([0, 1]))
    def settle(self, hold: Hold, factor: float, writer: int) -> None:
        cost = int(hold.amount * factor) + (1 if factor > 1 else 0)  # above the hold: an upstream over-reporting
        self._settle(self.world.writers[writer], hold, cost)

    @rule(hold=consumes(holds), cost=amounts)
    def sweep_then_settle_late(self, hold: Hold, cost: int) -> None:
        """The hold's process looked dead: the sweeper released it; then the process settles after all."""
        w = self.world
        w.writers[1].settle(self._settlement(hold, 0, release_only=True))
        w.loop.run(w.writers[1].flush())
        self._settle(w.writers[0], hold, cost)

    def _settle(self, writer: LedgerWriter, hold: Hold, cost: int) -> None:
        self.costs[hold.request_id] = cost
        writer.settle(self._settlement(hold, cost))
        self.world.loop.run(writer.flush())

    @rule(amounts=st.lists(amounts, min_size=2, max_size=8), costs=st.lists(st.integers(0, 3_000_000), min_size=8, max_size=8))
    def burst(self, amounts: list[int], costs: list[int]) -> None:
        """Concurrent requests through both writers: each holds, then settles at a random cost."""
        w = self.world

        async def one(i: int, amount: int) -> None:
            writer = w.writers[i % 2]
            held = await self._try_hold(writer, self._hold_op(amount, daily=i % 3 == 0))
            if held is not None:
                self.costs[held.request_id] = costs[i]
                writer.settle(self._settlement(held, costs[i]))

        async def run() -> None:
            await asyncio.gather(*(one(i, amount) for i, amount in enumerate(amounts)))
            for writer in w.writers:
                await writer.flush()

        w.loop.run(run())

    @rule(amount=st.integers(min_value=1, max_value=2_000_000), refund=st.booleans())
    def credit(self, amount: int, refund: bool) -> None:
        """A top-up, or a refund that takes back unspent credit (refused below zero)."""
        w = self.world
        delta = -amount if refund else amount

        async def apply() -> bool:
            try:
                async with w.engine.begin() as conn:
                    await add_credits(conn, self.uid, delta, kind="refund" if refund else "topup")
            except InvalidRequest:
                return False
            return True

        if w.loop.run(apply()):
            self.credited += delta

    @invariant()
    def money_is_conserved_and_never_negative(self) -> None:
        w = self.world

        async def read() -> dict[str, Any]:
            async with w.engine.connect() as conn:
                balance = await conn.scalar(select(users.c.balance).where(users.c.id == self.uid))
                rows = (await conn.execute(select(requests).where(requests.c.user_id == self.uid))).all()
                keys = {r.id: r for r in await conn.execute(select(api_keys).where(api_keys.c.user_id == self.uid))}
                entries = await conn.scalar(select(func.coalesce(func.sum(ledger_entries.c.amount), 0)).where(ledger_entries.c.user_id == self.uid))
                report = await check_ledger(conn)
            return {"balance": balance, "rows": rows, "keys": keys, "entries": entries, "report": report}

        seen = w.loop.run(read())
        balance, rows, keys = seen["balance"], seen["rows"], seen["keys"]
        assert balance >= 0
        assert balance == seen["entries"]
        assert seen["report"].ok, seen["report"].problems
        open_holds = sum(r.hold_nanos for r in rows if r.state == "held")
        charged = sum(r.cost_nanos for r in rows)
        assert balance + open_holds + charged == self.credited
        for r in rows:
            if r.state != "held":
                assert r.cost_nanos + r.overage_nanos == self.costs.get(r.id, 0), r.id
        total = keys[self.total_key]
        assert total.used_nanos + total.held_nanos <= KEY_LIMIT
        today = [r for r in rows if r.key_id == self.daily_key and _utc(r.created_at) >= _midnight()]
        assert sum(r.hold_nanos if r.state == "held" else r.cost_nanos for r in today) <= DAY_LIMIT


def _utc(value: Any) -> Any:
    from tokenhub.storage.engine import as_utc

    return as_utc(value)


def _midnight() -> Any:
    return utc_now().replace(hour=0, minute=0, second=0, microsecond=0)


def test_money_invariants_hold_under_random_operations(database_url: str) -> None:
    world = World(database_url)
    Money.world = world
    try:
        Money.TestCase.settings = settings(
            max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
        )
        Money.TestCase().runTest()
        stores = [writer._store for writer in world.writers]
        if isinstance(stores[0], PostgresLedgerStore):  # both ways a group commits on PostgreSQL were driven
            assert sum(s.known.hits for s in stores) and sum(s.known.misses for s in stores)
    finally:
        world.close()
