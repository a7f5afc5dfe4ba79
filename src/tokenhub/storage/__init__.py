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

import importlib.util
import pkgutil
import sys


def _register_unexecuted(name: str) -> None:
    """Put package ``name`` in ``sys.modules`` without running its ``__init__`` until a name is looked up on it."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None and spec.submodule_search_locations is not None
    package = importlib.util.module_from_spec(spec)
    submodules = {m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)}

    def run_init(attr: str) -> object:
        if attr in submodules or attr.startswith("__"):
            # The import system asks before it imports a submodule (``from . import exc`` in
            # ``engine``); dunders are introspection. Neither needs the rest of the package.
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return getattr(package, attr)

    package.__dict__["__getattr__"] = run_init
    sys.modules[name] = package


_register_unexecuted("sqlalchemy.ext.asyncio")

from sqlalchemy.ext.asyncio.engine import AsyncConnection, AsyncEngine, create_async_engine  # noqa: E402

__all__ = ["AsyncConnection", "AsyncEngine", "create_async_engine"]
