"""The README's walk-through, run as a newcomer would: the CLI and `tokenhub serve` as processes,
then the README's curl and Python examples against it (the upstream is the fake DeepSeek)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import Served, clean_env, cli
from tests.support.servers import ServerThread

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def block_after(marker: str) -> str:
    match = re.search(re.escape(marker) + r".*?```\w*\n(.*?)```", README, re.S)
    assert match, marker
    return match.group(1)


@pytest.fixture
def serve():
    started: list[Served] = []

    def start(env: dict[str, str]) -> Served:
        started.append(Served(env))
        return started[-1]

    yield start
    for served in started:
        if served.proc.returncode is None:
            served.stop()


def test_readme_walkthrough(tmp_path: Path, serve, fake_openai_server: ServerThread, media_servers):
    env = clean_env(tmp_path / "home")
    env["DEEPSEEK_API_KEY"] = "sk-upstream"
    key = None
    for line in block_after("<!-- quickstart:start -->").splitlines():
        line = line.split("  #")[0].strip()
        if not line.startswith("tokenhub ") or line == "tokenhub serve":
            continue
        args = shlex.split(os.path.expandvars(line.replace('"$DEEPSEEK_API_KEY"', env["DEEPSEEK_API_KEY"])))[1:]
        if args[:2] == ["channel", "add"]:
            args += ["--base-url", f"{fake_openai_server.url}/v1"]  # the fake DeepSeek instead of the real one
        result = cli(args, env)
        assert result.returncode == 0, (line, result.stderr)
        if args[:2] == ["key", "create"]:
            key = result.stdout.strip()
    assert key and key.startswith("th-")
    env.pop("DEEPSEEK_API_KEY")  # the channel was added explicitly, as the README shows

    served = serve(env)
    port = served.port
    example_env = {**env, "TOKENHUB_KEY": key}

    if shutil.which("curl"):
        curl = block_after("<!-- example:curl -->").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        out = subprocess.run(["bash", "-c", curl], env=example_env, capture_output=True, text=True, timeout=30)
        assert '"content":"Hello! This is a fake reply."' in out.stdout, out.stdout + out.stderr

    python = block_after("<!-- example:python -->").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    out = subprocess.run([sys.executable, "-c", python], env=example_env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Hello! This is a fake reply."
    assert lines[1].startswith("cost in USD: ") and float(lines[1].split(": ")[1]) > 0
    assert lines[-1].startswith("cost in USD: ")

    anthropic_example = block_after("<!-- example:anthropic -->").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    out = subprocess.run([sys.executable, "-c", anthropic_example], env=example_env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Hello! This is a fake reply."

    # the media examples, against the fake Ark and Kling
    from tests.conftest import KLING_AK, KLING_SK, UPSTREAM_KEY

    assert cli(["channel", "add", "ark", "--api-key", UPSTREAM_KEY, "--base-url", media_servers["ark"].url + "/api/v3"], env).returncode == 0
    assert cli(["channel", "add", "kling", "--api-key", f"{KLING_AK}:{KLING_SK}", "--base-url", media_servers["kling"].url], env).returncode == 0
    time.sleep(1.5)  # the running gateway picks up CLI changes within a second
    media = block_after("<!-- example:media -->").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    out = subprocess.run(["bash", "-c", media], env=example_env, capture_output=True, text=True, timeout=60)
    assert '"generated_images":1' in out.stdout, out.stdout + out.stderr
    assert '"object":"video.generation.task"' in out.stdout and '"status":"queued"' in out.stdout, out.stdout

    shown = cli(["credits", "show", "dev@example.com"], env)
    assert "total usage:   $0.0" in shown.stdout  # the chat calls and one image
    assert "held:          $0.84" in shown.stdout  # the 5-second Kling std video, still running: 5 x $0.168
    assert cli(["ledger", "check"], env).returncode == 0


def test_first_start_explains_how_to_create_an_admin(tmp_path: Path, serve):
    env = clean_env(tmp_path / "home")
    output = serve(env).stop()
    assert "No admin exists yet" in output and "tokenhub user create" in output
    assert (tmp_path / "home" / "tokenhub.db").exists()
    assert oct((tmp_path / "home" / "secret.key").stat().st_mode & 0o777) == "0o600"


def test_first_start_creates_the_admin_from_the_environment(tmp_path: Path, serve):
    env = clean_env(tmp_path / "home")
    env["TOKENHUB_ADMIN_EMAIL"] = "ops@example.com"
    env["TOKENHUB_ADMIN_PASSWORD"] = "a-long-password"
    base = serve(env).base_url
    key = cli(["key", "create", "ops@example.com"], env).stdout.strip()
    req = urllib.request.Request(f"{base.removesuffix('/api/v1')}/api/admin/users", headers={"Authorization": f"Bearer {key}"})
    deadline = time.monotonic() + 5
    while True:  # the new key reaches the running gateway within a second
        try:
            body = urllib.request.urlopen(req, timeout=5).read().decode()
            break
        except urllib.error.HTTPError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert '"email":"ops@example.com"' in body and '"is_admin":true' in body
    assert "a-long-password" not in (tmp_path / "home" / "tokenhub.db").read_bytes().decode("latin-1")
