"""TokenHub's build backend: setuptools', with one addition. A wheel — what ``pip install .`` builds —
compiles the request path with mypyc (``setup.py`` names the modules); an editable install (``pip
install -e .``, the developer's) stays pure Python, so an edit takes effect without a rebuild.
``TOKENHUB_PURE_PYTHON=1`` builds a pure-Python wheel. docs/operations.md: installing.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 (every other hook is setuptools' own)

MYPYC = "mypy==2.4.1"  # mypyc ships with mypy; pinned, as the compiled code is its output
# The third-party packages the compiled modules import, installed for their types: without them mypyc
# compiles against ``Any`` (a class extending aiohttp's would be laid out as if it extended ``object``),
# unlike the type check and the measured in-place build (bench/instructions.py).
TYPED_IMPORTS = ("aiohttp", "orjson")


def _typed_imports() -> list[str]:
    """The project's own requirements for TYPED_IMPORTS, as pyproject.toml pins them."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    return [req for req in project["dependencies"] if re.match(r"[A-Za-z0-9_.-]+", req).group().lower() in TYPED_IMPORTS]


def _native() -> bool:
    return os.environ.get("TOKENHUB_PURE_PYTHON", "") in ("", "0")


def get_requires_for_build_wheel(config_settings=None):
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *([MYPYC, *_typed_imports()] if _native() else [])]


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if _native():
        os.environ["TOKENHUB_MYPYC"] = "1"  # read by setup.py, in this hook's process only
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
