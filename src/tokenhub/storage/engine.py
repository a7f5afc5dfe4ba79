"""Engines: SQLite (WAL, immediate write transactions) or PostgreSQL (asyncpg)."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from tokenhub.storage import AsyncConnection, AsyncEngine, create_async_engine
from tokenhub.storage.tables import meta

log = logging.getLogger(__name__)

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700

def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def create_engine(database_url: str, *, pool_size: int = 8) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            make_private_sqlite_file(Path(url.database))
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _make_sqlite_transactions_immediate(engine)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def make_private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (its folder 0700) before anything opens it, and tighten an older one.

    The file holds password hashes and webhook secrets. SQLite itself would create it 0644 (less the
    umask); it creates ``-wal`` and ``-shm`` with the main file's mode whatever the umask, so a 0600
    main file is what makes all three private — for every connection, the ledger store's included.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if stat.S_IMODE(os.stat(name).st_mode) & 0o077:
                os.chmod(name, PRIVATE_FILE)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: say so, and go on
            log.warning("cannot make %s private (0600): %s", name, exc)


def _make_sqlite_transactions_immediate(engine: AsyncEngine | Engine) -> None:
    """WAL for concurrent readers; every transaction takes the write lock up front.

    A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY when
    another process wrote meanwhile; ``BEGIN IMMEDIATE`` waits for the lock instead (busy
    timeout), which is what makes the conditional balance update safe across processes.
    """

    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def bump_config_version(conn: AsyncConnection) -> None:
    """Tell every gateway process that keys, users, channels or models changed."""
    result = await conn.execute(
        update(meta).where(meta.c.name == "config_version").values(value=meta.c.value + 1)
    )
    if result.rowcount == 0:
        await conn.execute(insert(meta).values(name="config_version", value=1))


async def config_version(conn: AsyncConnection) -> int:
    value = await conn.scalar(select(meta.c.value).where(meta.c.name == "config_version"))
    return int(value or 0)


async def deployment_id(conn: AsyncConnection) -> int:
    """A random number naming this deployment (its database), made once: shared stores such as
    Redis keep each deployment's keys apart with it."""
    value = await conn.scalar(select(meta.c.value).where(meta.c.name == "deployment_id"))
    if value is None:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(meta).values(name="deployment_id", value=secrets.randbits(62)))
        except IntegrityError:
            pass  # another process made it first
        value = await conn.scalar(select(meta.c.value).where(meta.c.name == "deployment_id"))
    return int(value)
