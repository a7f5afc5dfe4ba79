"""The compiled part of a wheel (everything else about the package is in pyproject.toml).

A wheel compiles the request path's own Python — the relay, the bill and the ledger writer, the OpenAI
protocol's modules, the SSE decoder, meter and cost arithmetic every streamed event runs through, and the
body parsing, field cleaning and token bounds every request passes —
with mypyc: the same modules, as C extensions beside their sources (bench/README.md, sessions 20 to 22,
for what it saves and why these).
The build backend (build_support/tokenhub_build.py) asks for it for wheels only; without a C compiler or
Python's headers the wheel is pure Python, as an editable install always is.

mypyc type-checks what it compiles (a type error fails the build) and enforces the annotations at run
time; a compiled class cannot be subclassed by Python code (so a subclass is compiled with its base:
providers/openai/legacy.py) nor patched; a class extending a third-party class stays in a module that is
not compiled (relay/event_stream.py: compiled, its instances' layout breaks; tests/test_compiled.py checks);
async generators are not compiled (relay/admission.py stays Python; relay/upstream_clock.py is its own
async iterator for this); no compiled coroutine awaits inside an ``except`` or ``finally`` block (the relay
once did, and re-raised a freed exception: tests/test_compiled.py checks the sources).
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path

from setuptools import setup

COMPILED = [
    "src/tokenhub/sse.py",
    "src/tokenhub/json_body.py",
    "src/tokenhub/tokens.py",
    "src/tokenhub/billing/bill.py",
    "src/tokenhub/billing/cost.py",
    "src/tokenhub/billing/ledger.py",
    "src/tokenhub/billing/ledger_plan.py",
    "src/tokenhub/billing/ledger_store.py",
    "src/tokenhub/providers/client_fields.py",
    "src/tokenhub/providers/openai/adapter.py",
    "src/tokenhub/providers/openai/legacy.py",
    "src/tokenhub/providers/openai/request.py",
    "src/tokenhub/providers/openai/responder.py",
    "src/tokenhub/providers/openai/stream.py",
    "src/tokenhub/providers/openai/wire.py",
    "src/tokenhub/relay/call.py",
    "src/tokenhub/relay/extensions.py",
    "src/tokenhub/relay/health.py",
    "src/tokenhub/relay/inflight.py",
    "src/tokenhub/relay/meter.py",
    "src/tokenhub/relay/relay.py",
    "src/tokenhub/relay/routing.py",
    "src/tokenhub/relay/serve.py",
    "src/tokenhub/relay/upstream_clock.py",
]


def can_compile() -> bool:
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if shutil.which(compiler) and headers.exists():
        return True
    print(f"tokenhub: no C compiler ({compiler}) or no Python headers ({headers}): building pure Python")
    return False


def ext_modules() -> list:
    if os.environ.get("TOKENHUB_MYPYC") != "1" or not can_compile():
        return []
    from mypyc.build import mypycify

    # Imports outside the list are read for their types, not checked (aiohttp and orjson are in the build for theirs).
    return mypycify(["--ignore-missing-imports", "--follow-imports=silent", *COMPILED], opt_level="3")


setup(ext_modules=ext_modules())
