"""The SQLite database holds password hashes and webhook secrets: only its owner may read it."""

from __future__ import annotations

import os
import stat
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.processes import Served, clean_env, cli


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual 022: what a fresh machine's shell gives the processes it starts."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files(home: Path) -> list[Path]:
    return [home / name for name in ("tokenhub.db", "tokenhub.db-wal", "tokenhub.db-shm")]


def test_tokenhub_serve_creates_the_database_private(tmp_path: Path, open_umask: None):
    home = tmp_path / "fresh-home"
    env = clean_env(home)
    served = Served(env)
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{served.port}/login", timeout=10).read()
        # The WAL and SHM exist while the process holds the database open.
        for path in files(home):
            assert path.exists(), path
            assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"
        assert mode(home) == 0o700
        assert mode(home / "secret.key") == 0o600
    finally:
        served.stop()


def test_the_cli_creates_the_database_private(tmp_path: Path, open_umask: None):
    home = tmp_path / "cli-home"
    env = clean_env(home)
    made = cli(["user", "create", "first@example.com"], env)
    assert made.returncode == 0, made.stderr
    assert mode(home) == 0o700
    db = home / "tokenhub.db"
    assert mode(db) == 0o600
    for path in files(home)[1:]:
        assert not path.exists() or mode(path) == 0o600


def test_an_older_world_readable_database_is_tightened(tmp_path: Path, open_umask: None):
    home = tmp_path / "old-home"
    env = clean_env(home)
    assert cli(["user", "create", "first@example.com"], env).returncode == 0
    db = home / "tokenhub.db"
    os.chmod(db, 0o644)  # as an older release left it
    served = Served(env)
    try:
        for path in files(home):
            assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"
    finally:
        served.stop()
