"""Run the Alembic migrations programmatically (first start creates the database).

A database already at the scripts' head is recognised without importing Alembic (its revisions are
read from the script files), so a gateway that starts on a migrated database never loads Alembic,
Mako and Pygments (~11 MB of a process that idles at ~60).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from tokenhub.storage import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:['\"]([^'\"]+)['\"]|None)", re.M)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def head_revisions() -> frozenset[str]:
    """The revisions no script builds on, read from the script files."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for name, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            if value:
                (revisions if name == "revision" else parents).add(value)
    return frozenset(revisions - parents)


def at_head(connection: Connection) -> bool:
    if not inspect(connection).has_table("alembic_version"):
        return False
    stamped = {row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")}
    return stamped == head_revisions()


def _upgrade(connection: Connection) -> None:
    if at_head(connection):
        return
    from alembic import command

    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
