"""The wheel's build (build_support/tokenhub_build.py and setup.py): pure Python when asked for, and when no C
compiler is at hand, so `pip install .` works on a machine without one. The compiled wheel is built, checked
and its request path tested again by .ci/run, after the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("env", [{"TOKENHUB_PURE_PYTHON": "1"}, {"CC": "/nonexistent/cc"}], ids=["asked for", "no compiler"])
def test_a_wheel_without_compiled_modules_is_pure_python(tmp_path: Path, env: dict[str, str]) -> None:
    out = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   env={**os.environ, **env}, check=True, capture_output=True, timeout=900)  # fmt: skip
    (wheel,) = out.glob("tokenhub-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")  # no platform tag: nothing compiled
    names = zipfile.ZipFile(wheel).namelist()
    assert "tokenhub/relay/relay.py" in names and "tokenhub/console/templates/base.html" in names
    assert [name for name in names if name.endswith((".so", ".pyd"))] == []
