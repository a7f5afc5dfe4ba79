"""Storage: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL, migrated by Alembic.

TokenHub uses SQLAlchemy's Core and its asyncio engine, never its ORM. But the package
``sqlalchemy.ext.asyncio`` imports ``AsyncSession`` in its ``__init__``, and with it all of
``sqlalchemy.orm``: 6 MB of a gateway that idles at 85 (bench/README.md, session 11). So this package
registers ``sqlalchemy.ext.asyncio`` before anything imports it without running its ``__init__``, and
imports the engine module alone; the first lookup of a name on the package
(``from sqlalchemy.ext.asyncio import AsyncSession``, by anyone) runs the real ``__init__`` there and
then, and the package is whole. TokenHub's modules import ``AsyncConnection`` and ``AsyncEngine`` from
here (ruff's banned-api rule keeps it so), which guarantees the order.
"""

from __future__ import annotations

from tokenhub.partial_import import register_unexecuted

register_unexecuted("sqlalchemy.ext.asyncio")

from sqlalchemy.ext.asyncio.engine import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402

__all__ = ["AsyncConnection", "AsyncEngine", "create_async_engine"]
