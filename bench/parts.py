"""Parts of the request path alone: CPU and wall time without HTTP or the rest of the gateway.

End-to-end runs on a shared VM move by more than a change to one part is worth (session 10's A/A
pairs differed by up to 5 %, session 13's by a third); this drives one part directly, the way the
gateway does, with the shapes of load the bench produces:

* ``ledger``: ``SqliteLedgerStore`` / ``PostgresLedgerStore``, one group commit after another.
  ``c1``: one request at a time, the last request's settlement sharing the next one's hold (what
  ``SETTLE_DELAY`` makes of a c=1 load): groups of [settlement, hold]; ``c16``: groups of 16
  settlements and 16 holds.
* ``rates``: ``RedisRates``, an admission and its release per request (a key with a requests-per-
  minute limit, as the bench's PostgreSQL + Redis target has), one request at a time (``c1``) or
  rounds of 16 at once (``c16``).

Run: ``python bench/parts.py ledger [--postgres]`` or ``python bench/parts.py rates``; pin it with
``taskset -c 1``, and for an A/B alternate two worktrees (``PYTHONPATH=/path/to/worktree/src``).
PostgreSQL runs on a fresh database at 127.0.0.1:5432, dropped after; Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid

import uvloop
from run import REDIS_URL, pg_admin  # bench/run.py, beside this file

from tokenhub.accounts.service import create_key, create_user
from tokenhub.billing.ledger_plan import Hold, Settlement
from tokenhub.billing.ledger_store import store_for
from tokenhub.billing.service import add_credits
from tokenhub.config import normalize_database_url
from tokenhub.limits.policy import Limits
from tokenhub.limits.rates import Scope
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine
from tokenhub.tokens import Usage

HOLD = 40_000_000  # nanodollars
COST = 12_345_678


# -- the ledger's store -----------------------------------------------------------------------


async def _account(url: str) -> tuple[object, int, int]:
    engine = create_engine(normalize_database_url(url))
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        user = await create_user(conn, f"bench-{uuid.uuid4().hex[:8]}@example.com")
        await add_credits(conn, user["id"], 10**18)
        _, key = await create_key(conn, user["id"])
    return engine, user["id"], key["id"]


def _settlement(hold: Hold) -> Settlement:
    """As a request's bill settles its committed hold (it knows the day its request was created)."""
    return Settlement(hold.request_id, hold.user_id, hold.key_id, HOLD, COST, "ok", Usage(512, 128), http_status=200,
                      finish_reason="stop", latency_ms=3, ttfb_ms=1, prices="in=1,out=2", channel_id=1,
                      upstream_model="gpt-bench", held_on=hold.held_on)  # fmt: skip


async def ledger(url: str, groups: int, per_group: int) -> dict[str, float]:
    engine, uid, kid = await _account(url)
    store = store_for(engine, "bench-ledger")  # type: ignore[arg-type]
    store.start()
    serial = 0
    open_holds: list[Hold] = []

    def batch() -> list:
        nonlocal serial
        ops: list = [_settlement(hold) for hold in open_holds]
        open_holds.clear()
        for _ in range(per_group):
            serial += 1
            hold = Hold(f"gen-bench-{serial:012d}", uid, kid, HOLD, "bench-model", stream=True, channel_id=1, upstream_model="gpt-bench")
            open_holds.append(hold)
            ops.append(hold)
        return ops

    async def commit() -> None:
        plan = await store.commit(batch())
        assert all(outcome is None for outcome in plan.outcomes), plan.outcomes
        for hold in plan.new_requests:
            hold.held_on = plan.today  # as the writer does once a group commits

    for _ in range(50):  # warm the connections, the prepared statements and the caches
        await commit()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(groups):
        await commit()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await store.close()
    await engine.dispose()  # type: ignore[attr-defined]
    return {"cpu_us_per_request": 1e6 * cpu / (groups * per_group), "wall_us_per_round": 1e6 * wall / groups}


def ledger_on(postgres: bool, groups: int, per_group: int) -> dict[str, float]:
    if not postgres:
        with tempfile.TemporaryDirectory() as tmp:
            return uvloop.run(ledger(f"sqlite:///{os.path.join(tmp, 'ledger.db')}", groups, per_group))
    name = f"tokenhub_bench_parts_{uuid.uuid4().hex[:8]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        return uvloop.run(ledger(f"postgresql://postgres@127.0.0.1:5432/{name}", groups, per_group))
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the rate limits in Redis -----------------------------------------------------------------


async def rates(rounds: int, per_round: int) -> dict[str, float]:
    from tokenhub.limits.redis_rates import RedisRates

    limiter = RedisRates(REDIS_URL, namespace=f"th-bench-{uuid.uuid4().hex[:8]}")
    scope = Scope(f"k:{uuid.uuid4().hex}", "key", Limits(rpm=10_000_000))
    serial = 0

    async def one() -> None:
        nonlocal serial
        serial += 1
        ticket = await limiter.admit([scope], f"gen-bench-{serial:012d}")
        ticket.release(640)

    async def round_() -> None:
        await asyncio.gather(*(one() for _ in range(per_round)))
        await asyncio.sleep(0)  # the releases' pipeline goes out

    try:
        for _ in range(200):
            await round_()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            await round_()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await asyncio.sleep(0.1)
        await limiter.client.delete(*[f"{limiter.namespace}:rl:{scope.ident}:{kind}" for kind in "rtc"])
        await limiter.close()
    return {"cpu_us_per_request": 1e6 * cpu / (rounds * per_round), "wall_us_per_round": 1e6 * wall / rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("ledger", "rates"))
    ap.add_argument("--postgres", action="store_true", help="ledger: PostgreSQL at 127.0.0.1:5432 (a fresh database), not SQLite")
    ap.add_argument("--rounds", type=int, default=2000, help="groups (ledger) or rounds of requests (rates) per shape")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    where = "" if args.part == "rates" else " on PostgreSQL" if args.postgres else " on SQLite"

    for shape, size in (("c1", 1), ("c16", 16)):
        for _ in range(args.repeats):
            if args.part == "ledger":
                r = ledger_on(args.postgres, args.rounds, size)
            else:
                r = uvloop.run(rates(args.rounds if size == 1 else max(1, args.rounds // 8), size))
            print(f"{args.part}{where} {shape}: CPU {r['cpu_us_per_request']:.1f} µs per request, "
                  f"wall {r['wall_us_per_round']:.0f} µs per {'group' if args.part == 'ledger' else 'round'}", flush=True)


if __name__ == "__main__":
    main()
