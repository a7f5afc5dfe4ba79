"""TokenHub's build backend: setuptools', with one addition. A wheel — what ``pip install .`` builds —
compiles the request path with mypyc (``setup.py`` names the modules); an editable install (``pip
install -e .``, the developer's) stays pure Python, so an edit takes effect without a rebuild.
``TOKENHUB_PURE_PYTHON=1`` builds a pure-Python wheel. docs/operations.md: installing.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 (every other hook is setuptools' own)

MYPYC = "mypy==2.4.1"  # mypyc ships with mypy; pinned, as the compiled code is its output


def _native() -> bool:
    return os.environ.get("TOKENHUB_PURE_PYTHON", "") in ("", "0")


def get_requires_for_build_wheel(config_settings=None):
    return [*_setuptools.get_requires_for_build_wheel(config_settings), *([MYPYC] if _native() else [])]


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if _native():
        os.environ["TOKENHUB_MYPYC"] = "1"  # read by setup.py, in this hook's process only
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
