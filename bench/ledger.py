"""The ledger's store alone: CPU and wall time per group commit, without HTTP or the rest of the gateway.

End-to-end runs on a shared VM move by more than a change to one commit is worth (session 10's A/A
pairs differed by up to 5 %); this drives ``SqliteLedgerStore`` / ``PostgresLedgerStore`` directly,
the way the writer does, with the shapes of group the bench produces:

* ``c1``: one request at a time, the last request's settlement sharing the next one's hold (what
  ``SETTLE_DELAY`` makes of a c=1 load): groups of [settlement, hold];
* ``c16``: groups of 16 settlements and 16 holds.

Run: ``python bench/ledger.py [--postgres] [--groups 2000]`` (pin it with ``taskset -c 1`` beside
an A/B of two worktrees: ``PYTHONPATH=/path/to/worktree/src``). PostgreSQL runs on a fresh database
at 127.0.0.1:5432, dropped after.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid

import uvloop

from tokenhub.accounts.service import create_key, create_user
from tokenhub.billing.ledger_plan import Hold, Settlement
from tokenhub.billing.ledger_store import store_for
from tokenhub.billing.service import add_credits
from tokenhub.config import normalize_database_url
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine
from tokenhub.tokens import Usage

HOLD = 40_000_000  # nanodollars
COST = 12_345_678
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _account(url: str) -> tuple[object, int, int]:
    engine = create_engine(normalize_database_url(url))
    await migrate.upgrade(engine)
    async with engine.begin() as conn:
        user = await create_user(conn, f"bench-{uuid.uuid4().hex[:8]}@example.com")
        await add_credits(conn, user["id"], 10**18)
        _, key = await create_key(conn, user["id"])
    return engine, user["id"], key["id"]


def _settlement(rid: str, uid: int, kid: int) -> Settlement:
    return Settlement(rid, uid, kid, HOLD, COST, "ok", Usage(512, 128), http_status=200, finish_reason="stop",
                      latency_ms=3, ttfb_ms=1, prices="in=1,out=2", channel_id=1, upstream_model="gpt-bench")


async def measure(url: str, groups: int, shape: str) -> dict[str, float]:
    engine, uid, kid = await _account(url)
    store = store_for(engine, "bench-ledger")  # type: ignore[arg-type]
    store.start()
    per_group = 1 if shape == "c1" else 16
    serial = 0
    open_holds: list[str] = []

    def batch() -> list:
        nonlocal serial
        ops: list = [_settlement(rid, uid, kid) for rid in open_holds]
        open_holds.clear()
        for _ in range(per_group):
            serial += 1
            rid = f"gen-bench-{serial:012d}"
            open_holds.append(rid)
            ops.append(Hold(rid, uid, kid, HOLD, "bench-model", stream=True, channel_id=1, upstream_model="gpt-bench"))
        return ops

    for _ in range(50):  # warm the connections, the prepared statements and the caches
        await store.commit(batch())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(groups):
        plan = await store.commit(batch())
        assert all(outcome is None for outcome in plan.outcomes), plan.outcomes
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await store.close()
    await engine.dispose()  # type: ignore[attr-defined]
    requests = groups * per_group
    return {"cpu_us_per_group": 1e6 * cpu / groups, "wall_us_per_group": 1e6 * wall / groups,
            "cpu_us_per_request": 1e6 * cpu / requests}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL at 127.0.0.1:5432 (a fresh database) instead of SQLite")
    ap.add_argument("--groups", type=int, default=2000, help="groups committed per shape")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    async def run() -> None:
        for shape in ("c1", "c16"):
            for _ in range(args.repeats):
                if args.postgres:
                    import asyncpg

                    name = f"tokenhub_bench_ledger_{uuid.uuid4().hex[:8]}"
                    admin = await asyncpg.connect(PG_ADMIN)
                    await admin.execute(f'CREATE DATABASE "{name}"')
                    try:
                        r = await measure(f"postgresql://postgres@127.0.0.1:5432/{name}", args.groups, shape)
                    finally:
                        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                        await admin.close()
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        r = await measure(f"sqlite:///{os.path.join(tmp, 'ledger.db')}", args.groups, shape)
                print(f"{'postgres' if args.postgres else 'sqlite'} {shape}: CPU {r['cpu_us_per_group']:.0f} µs/group "
                      f"({r['cpu_us_per_request']:.1f} µs/request), wall {r['wall_us_per_group']:.0f} µs/group", flush=True)

    uvloop.run(run())


if __name__ == "__main__":
    main()
