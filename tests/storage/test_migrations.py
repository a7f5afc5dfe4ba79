"""Upgrading a database that holds data keeps every row (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text

from tokenhub.accounts.service import create_key, create_user
from tokenhub.billing.service import add_credits, check_ledger, credits_summary
from tokenhub.config import normalize_database_url
from tokenhub.storage import migrate
from tokenhub.storage.engine import create_engine
from tokenhub.storage.tables import api_keys, console_sessions, ledger_entries, requests, users


def test_upgrade_from_the_first_revision_keeps_data(database_url: str):
    async def scenario() -> None:
        engine = create_engine(normalize_database_url(database_url))
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(migrate.alembic_config(sync), "0001"))
        async with engine.begin() as conn:  # rows written as the 0001 schema knew them
            await conn.execute(text("INSERT INTO users (email, is_admin, disabled, balance, created_at) "
                                    "VALUES ('old@example.com', false, false, 0, CURRENT_TIMESTAMP)"))
        await migrate.upgrade(engine)  # to head, with a user (and soon keys and ledger rows) present
        async with engine.begin() as conn:
            user = await create_user(conn, "new@example.com")
            await add_credits(conn, user["id"], 5_000_000_000)
            await create_key(conn, user["id"])
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(users)) == 2
            assert await conn.scalar(select(users.c.session_epoch).where(users.c.email == "old@example.com")) == 0
            assert await conn.scalar(select(func.count()).select_from(api_keys)) == 1
            assert await conn.scalar(select(func.count()).select_from(ledger_entries)) == 1
            assert await conn.scalar(select(func.count()).select_from(console_sessions)) == 0  # 0007: a new table
            assert (await credits_summary(conn, "new@example.com"))["balance_nanos"] == 5_000_000_000
            assert (await check_ledger(conn)).ok
        await engine.dispose()

    asyncio.run(scenario())


def test_upgrade_with_referencing_rows(database_url: str):
    """A user row referenced by keys and ledger entries must survive every later migration."""

    async def scenario() -> None:
        engine = create_engine(normalize_database_url(database_url))
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(migrate.alembic_config(sync), "0001"))
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO users (id, email, is_admin, disabled, balance, created_at) "
                                    "VALUES (7, 'ref@example.com', false, false, 100, CURRENT_TIMESTAMP)"))
            await conn.execute(text("INSERT INTO api_keys (user_id, name, key_hash, key_prefix, used_nanos, held_nanos, created_at) "
                                    "VALUES (7, 'k', 'h', 'th-x', 0, 0, CURRENT_TIMESTAMP)"))
            await conn.execute(text("INSERT INTO ledger_entries (user_id, kind, amount, balance_after, created_at) "
                                    "VALUES (7, 'adjustment', 100, 100, CURRENT_TIMESTAMP)"))
            await conn.execute(text(
                "INSERT INTO requests (id, user_id, key_id, model, endpoint, stream, state, hold_nanos, cost_nanos, prompt_tokens, "
                "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, instance_id, created_at) "
                "VALUES ('gen-old', 7, (SELECT id FROM api_keys), 'm', 'chat', false, 'held', 0, 0, 0, 0, 0, 0, 0, false, 'i', "
                "CURRENT_TIMESTAMP)"))
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.scalar(select(users.c.balance).where(users.c.id == 7)) == 100
            assert await conn.scalar(select(requests.c.state).where(requests.c.id == "gen-old")) == "held"
            assert (await check_ledger(conn)).ok

            def shape(sync: Any) -> dict[str, Any]:
                found = inspect(sync)
                return {table: (found.get_foreign_keys(table), sorted(ix["name"] for ix in found.get_indexes(table)))
                        for table in ("requests", "ledger_entries")}

            # 0011: the ledger's tables lose their foreign keys (SQLite rebuilds them) and keep their indexes
            assert await conn.run_sync(shape) == {
                "requests": ([], ["ix_requests_held", "ix_requests_key_created", "ix_requests_user_created"]),
                "ledger_entries": ([], ["ix_ledger_user_id_id"]),
            }
        await engine.dispose()

    asyncio.run(scenario())


def test_the_head_is_read_from_the_scripts_as_alembic_reads_it():
    from alembic.script import ScriptDirectory

    from tokenhub.storage.migrate import alembic_config, head_revisions

    assert head_revisions() == frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_a_database_at_the_head_starts_without_loading_alembic(tmp_path):
    """The gateway's process loads what the request path needs; migrations, payments, templates, the
    other database's driver, Redis, SQLAlchemy's ORM, the console, the admin API, password hashing and
    the ``cryptography`` package load only when used, prometheus_client's exposition with the first
    scrape (idle memory: bench/README.md)."""
    import json

    from tests.support.processes import clean_env, cli, python_output

    env = clean_env(tmp_path / "home")
    assert cli(["user", "create", "dev@example.com"], env).returncode == 0  # creates and migrates the database
    channel = ["channel", "add", "openai-compatible", "--base-url", "http://127.0.0.1:9/v1", "--api-key", "sk-x", "--name", "c"]
    assert cli([*channel, "--models", "openai/gpt-4.1=gpt-4.1"], env).returncode == 0  # a sealed key the start opens
    probe = (
        "import asyncio, json, sys\n"
        "from tokenhub.app import create_app\n"
        "from tokenhub.config import Settings\n"
        "from tokenhub.gateway import Gateway\n"
        "async def main():\n"
        "    settings = Settings.from_env()\n"
        "    create_app(settings)\n"
        "    gateway = await Gateway.start(settings)\n"
        "    await gateway.stop()\n"
        "asyncio.run(main())\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    modules = set(json.loads(python_output(probe, env).strip().splitlines()[-1]))
    loaded = {name.split(".")[0] for name in modules}
    assert {"aiohttp", "sqlalchemy", "tokenhub"} <= loaded
    assert not loaded & {"alembic", "mako", "pygments", "stripe", "requests", "jinja2", "redis", "asyncpg", "jwt", "cryptography", "argon2"}
    assert "sqlalchemy.ext.asyncio.engine" in modules
    deferred = ("sqlalchemy.orm", "tokenhub.console", "tokenhub.admin", "tokenhub.api.media", "tokenhub.relay.serve_media")
    assert not {name for name in modules if name.startswith(deferred)}
    assert not modules & {"tokenhub.providers.media.ark", "tokenhub.providers.media.kling", "tokenhub.providers.media.dashscope"}
    assert "prometheus_client.metrics" in modules and "prometheus_client.exposition" not in modules


def test_sqlalchemys_asyncio_package_is_whole_when_asked_for():
    """tokenhub.storage imports SQLAlchemy's asyncio engine without the package's __init__ (which brings
    the ORM); anyone asking the package for another name gets it, and the ORM, then."""
    from tests.support.processes import python_output

    probe = (
        "import sys\n"
        "import tokenhub.storage\n"
        "assert 'sqlalchemy.orm' not in sys.modules\n"
        "from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker\n"
        "import sqlalchemy.ext.asyncio.session as session\n"
        "assert AsyncSession is session.AsyncSession and AsyncConnection is tokenhub.storage.AsyncConnection\n"
        "assert 'sqlalchemy.orm' in sys.modules\n"
        "print('whole')\n"
    )
    assert python_output(probe).strip() == "whole"


def test_the_spend_by_period_starts_from_the_requests_stored(database_url: str):
    """0012: each key's and account's spend by day in the current week and month (and each account's in
    total) is filled from the requests already stored, so a spend limit counts what was spent before the
    upgrade: open holds at their amount, the rest at their cost."""
    from datetime import timedelta

    from sqlalchemy import insert

    from tokenhub.billing.ledger import Hold, LedgerWriter
    from tokenhub.errors import LimitReached
    from tokenhub.storage.engine import utc_now
    from tokenhub.storage.tables import spend_by_period

    async def scenario() -> None:
        engine = create_engine(normalize_database_url(database_url))
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(migrate.alembic_config(sync), "0011"))
        async with engine.begin() as conn:
            user = await create_user(conn, "spender@example.com")
            await add_credits(conn, user["id"], 10**9)
            _, key = await create_key(conn, user["id"])
            now = utc_now()
            row = dict(user_id=user["id"], key_id=key["id"], model="m", endpoint="chat", stream=False, prompt_tokens=0,
                       completion_tokens=0, cached_tokens=0, cache_write_tokens=0, reasoning_tokens=0, estimated=False,
                       instance_id="old")  # fmt: skip
            await conn.execute(insert(requests), [
                {**row, "id": "gen-today", "state": "settled", "hold_nanos": 900, "cost_nanos": 300, "created_at": now},
                {**row, "id": "gen-open", "state": "held", "hold_nanos": 1_000, "cost_nanos": 0, "created_at": now},
                {**row, "id": "gen-old", "state": "settled", "hold_nanos": 9_000, "cost_nanos": 5_000, "created_at": now - timedelta(days=800)},
            ])  # fmt: skip
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            kept = {(r.scope, r.period): r.amount for r in await conn.execute(select(spend_by_period))}
        assert kept == {("key", "day"): 1_300, ("user", "day"): 1_300, ("user", "total"): 6_300}  # today's, and in all

        ledger = LedgerWriter(engine, "new")
        ledger.start()
        budget = (("key", key["id"], "day", 2_000),)
        with pytest.raises(LimitReached):  # 1,300 spent today before the upgrade
            await ledger.hold(Hold("gen-over", user["id"], key["id"], 701, "m", budgets=budget))
        await ledger.hold(Hold("gen-fits", user["id"], key["id"], 700, "m", budgets=budget))
        await ledger.close()
        async with engine.connect() as conn:
            kept = {(r.scope, r.period): r.amount for r in await conn.execute(select(spend_by_period))}
        assert kept[("key", "day")] == 2_000 and kept[("user", "total")] == 7_000
        await engine.dispose()

    asyncio.run(scenario())
