"""The command-line agents users bring, installed from npm into tests/clients (``npm ci --prefix tests/clients``).

Each runs as a real subprocess against a real gateway on loopback, with a throwaway HOME so nothing of
the machine leaks in. Locally the tests skip when Node or the install is missing; in CI (``CI`` set),
a missing install fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.agents.recorder import Recorder, start_recorder
from tests.support.harness import Harness
from tokenhub.storage.tables import ledger_entries, requests

BIN = Path(__file__).resolve().parents[1] / "clients" / "node_modules" / ".bin"
QUIET = {
    "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "NO_COLOR": "1", "CI": "1",
}  # fmt: skip


def agent(name: str) -> Path:
    """The installed command-line agent ``name`` (under node_modules/.bin)."""
    return _installed(BIN / name, name)


def node_package(name: str) -> Path:
    """The installed npm package ``name`` (a library such as the openai SDK, run by a script under tests/clients)."""
    return _installed(BIN.parent / name / "package.json", name)


def _installed(path: Path, name: str) -> Path:
    if not path.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: .ci/run installs the agents with npm ci --prefix tests/clients")
        pytest.skip(f"{name} is not installed (npm ci --prefix tests/clients)")
    return path


def run_agent(command: list[str], home: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "CODEX_"))}
    full = {**clean, **QUIET, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **env}
    return subprocess.run(command, env=full, cwd=home, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def recorded(gateway: Harness) -> Iterator[tuple[str, Recorder]]:
    """A recording proxy in front of the gateway: (its /api base URL, the recorder of the agent's calls)."""
    server, recorder = start_recorder(gateway.base_url.removesuffix("/api/v1"))
    yield f"{server.url}/api", recorder
    server.stop()


def assert_billed_exactly(gw: Harness, email: str) -> int:
    """Every request the agent made was settled, the ledger's charges are the usage records' costs, and
    the ledger is consistent; returns the total charged (nanos, > 0)."""
    gw.flush()
    rows = gw.read(lambda c: _all(c, select(requests.c.state, requests.c.cost_nanos)))
    charges = gw.read(lambda c: _all(c, select(ledger_entries.c.amount).where(ledger_entries.c.kind == "charge")))
    assert rows and all(row.state == "settled" for row in rows), rows
    cost = sum(row.cost_nanos for row in rows)
    assert cost > 0 and abs(sum(row.amount for row in charges)) == cost == gw.credits(email)["total_usage_nanos"]
    assert gw.ledger_report().ok
    return cost


async def _all(conn: AsyncConnection, query: Any) -> list[Any]:
    return list((await conn.execute(query)).all())
