"""The classes of a compiled wheel have instance layouts CPython can use.

mypyc compiles each class of a module in setup.py's COMPILED as a native class. One whose base is a
third-party Python class (an aiohttp ``StreamResponse`` subclass did, in relay.py) is laid out as if
its base were ``object``: on CPython 3.11 it inherits the base's managed ``__dict__`` offset without the
memory behind it, and every attribute set on an instance writes outside the object (a crash in a
later request, or a ``SystemError`` from a dict that is not one). The layout checks run on the installed
package: skipped on the editable (pure Python) install, run by .ci/run's pass over the compiled wheel. The
compiled modules' sources are checked everywhere for what mypyc got wrong in this code.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import tokenhub.sse

ROOT = Path(__file__).resolve().parent.parent
MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT (3.11 to 3.13)

installed_compiled = pytest.mark.skipif(not tokenhub.sse.__file__.endswith((".so", ".pyd")), reason="the installed tokenhub is pure Python")


def compiled_modules() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    (paths,) = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED"]
    return [ast.literal_eval(p).removeprefix("src/").removesuffix(".py").replace("/", ".") for p in paths.elts]


def classes_of(module_name: str) -> list[type]:
    module = importlib.import_module(module_name)
    assert module.__file__ is not None and module.__file__.endswith((".so", ".pyd")), module.__file__
    return [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module_name]


def is_native(cls: type) -> bool:
    return "__mypyc_attrs__" in cls.__dict__


@installed_compiled
@pytest.mark.parametrize("module_name", compiled_modules())
def test_no_native_class_extends_a_third_party_class(module_name: str) -> None:
    foreign = {
        f"{cls.__qualname__} extends {base.__module__}.{base.__qualname__}"
        for cls in classes_of(module_name)
        if is_native(cls)
        for base in cls.__mro__[1:]
        if base.__module__.split(".")[0] not in ("tokenhub", "builtins", "typing")  # (a Protocol, a Generic: mypyc's own)
    }
    assert foreign == set(), "keep such a class in a module that is not compiled (relay/event_stream.py does)"


@installed_compiled
@pytest.mark.parametrize("module_name", compiled_modules())
def test_every_class_finds_its_instance_dict_where_it_is(module_name: str) -> None:
    for cls in classes_of(module_name):
        if cls.__dictoffset__ < 0:  # a dict before the object: only where the type allocates it there
            assert cls.__flags__ & MANAGED_DICT, f"{cls.__qualname__}: __dict__ at {cls.__dictoffset__} with no managed dict"
        for offset in (cls.__dictoffset__, cls.__weakrefoffset__):
            assert offset <= 0 or offset + 8 <= cls.__basicsize__, f"{cls.__qualname__}: a slot at {offset} outside {cls.__basicsize__} bytes"


def awaits_in_handlers(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Try | ast.TryStar):
            blocks = [("except", handler.body) for handler in node.handlers] + [("finally", node.finalbody)]
            found += [f"{path.name}:{sub.lineno} awaits in a {kind} block" for kind, body in blocks for stmt in body
                      for sub in ast.walk(stmt) if isinstance(sub, ast.Await | ast.AsyncFor | ast.AsyncWith)]  # fmt: skip
    return found


def test_no_compiled_coroutine_awaits_while_it_handles_an_exception() -> None:
    """The relay's ``_serve`` once awaited the hold's commit inside ``except GatewayError``: compiled, a
    request whose upstream failed before its hold committed re-raised an exception that had been freed
    meanwhile (a crash in a later callback; tests/relay/test_early_hold.py has the case). The compiled
    modules keep the exception in a name and await after the handler instead."""
    found = [hit for name in compiled_modules() for hit in awaits_in_handlers(ROOT / "src" / (name.replace(".", "/") + ".py"))]
    assert found == []


@installed_compiled
def test_the_compiled_relay_streams_on_the_stream_response_of_a_python_module() -> None:
    from tokenhub.relay import event_stream

    assert event_stream.__file__.endswith(".py") and not is_native(event_stream.EventStream)
    assert not event_stream.EventStream._send_headers_immediately
