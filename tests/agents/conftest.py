"""The command-line agents users bring, installed from npm into tests/clients (``npm ci --prefix tests/clients``).

Each runs as a real subprocess against a real gateway on loopback, with a throwaway HOME so nothing of
the machine leaks in. Locally the tests skip when Node or the install is missing; in CI (``CI`` set),
a missing install fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[1] / "clients" / "node_modules" / ".bin"
QUIET = {
    "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "NO_COLOR": "1", "CI": "1",
}  # fmt: skip


def installed(path: Path) -> Path:
    """``path`` under tests/clients/node_modules; a skip where it is not installed, a failure in CI."""
    if not path.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: .ci/run installs the test clients with npm ci --prefix tests/clients")
        pytest.skip(f"{path.name} is not installed (npm ci --prefix tests/clients)")
    return path


def agent(name: str) -> Path:
    return installed(BIN / name)


def run_agent(command: list[str], home: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "CODEX_"))}
    full = {**clean, **QUIET, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **env}
    return subprocess.run(command, env=full, cwd=home, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
