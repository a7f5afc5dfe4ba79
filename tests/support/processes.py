"""`tokenhub` as real processes: the CLI, and `tokenhub serve` on a free port."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a fresh machine: no TOKENHUB_* settings, no upstream keys."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TOKENHUB_") and not k.endswith(("_API_KEY", "_ACCESS_KEY", "_SECRET_KEY"))
    }
    env["TOKENHUB_HOME"] = str(home)
    return env


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokenhub", *args], env=env, capture_output=True, text=True, timeout=60)


def python_output(code: str, env: dict[str, str] | None = None) -> str:
    """What ``code`` prints run by a fresh interpreter (its own ``sys.modules``); it must exit 0."""
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def free_port() -> int:
    """A loopback port nothing listens on, for a server another process will open, below the kernel's
    ephemeral range: a server a test starts meanwhile on port 0 (a gateway in a thread) is never given
    the same port. (One from the range was, once, and the test's OpenID provider answered as the gateway.)"""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for _ in range(100 if low > 20_000 else 0):
        port = random.randrange(10_000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A `tokenhub serve` process."""

    def __init__(self, env: dict[str, str], *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokenhub", "serve", "--port", str(self.port), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        self._wait_until_serving()

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tokenhub serve exited: {self.output()}")
            try:
                urllib.request.urlopen(f"{self.base_url}/models", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("tokenhub serve did not start")

    def stop(self) -> str:
        """SIGTERM, wait, and return everything the process printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.output()

    def kill(self) -> None:
        self.proc.kill()
        self.output()

    def output(self) -> str:
        out, _ = self.proc.communicate(timeout=30)
        return out or ""
