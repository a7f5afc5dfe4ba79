"""A package's submodules without the package's ``__init__``, for packages whose ``__init__`` loads far
more than the gateway uses (SQLAlchemy's asyncio package brings the whole ORM; prometheus_client's
brings the exposition's HTTP and WSGI servers).

``register_unexecuted(name)`` puts the package in ``sys.modules`` unexecuted; its submodules then import
as usual. The first lookup of any other name on the package (``from package import Name``, by anyone)
runs the real ``__init__`` there and then, so the package is whole for whoever asks for it.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import sys


def register_unexecuted(name: str) -> None:
    """Put package ``name`` in ``sys.modules`` without running its ``__init__`` until a name is looked up on it."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None and spec.submodule_search_locations is not None
    package = importlib.util.module_from_spec(spec)
    submodules = {m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)}

    def run_init(attr: str) -> object:
        if attr in submodules or attr.startswith("__"):
            # The import system asks before it imports a submodule (``from . import exc`` in a
            # submodule); dunders are introspection. Neither needs the rest of the package.
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        del package.__dict__["__getattr__"]
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return getattr(package, attr)

    package.__dict__["__getattr__"] = run_init
    sys.modules[name] = package
