"""`tokenhub serve` as a process: environment channels at start, and no hold outliving a kill -9."""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
from pathlib import Path

from tests.support.processes import Served, clean_env, cli
from tests.support.servers import ServerThread


def test_upstream_keys_in_the_environment_become_channels(tmp_path: Path):
    env = clean_env(tmp_path / "home")
    env.update({"DEEPSEEK_API_KEY": "sk-deepseek-from-env", "KLING_ACCESS_KEY": "ak-1", "KLING_SECRET_KEY": "sk-kling-secret"})
    served = Served(env)
    served.stop()
    listing = cli(["channel", "list"], env).stdout
    assert "env-deepseek" in listing and "https://api.deepseek.com/v1" in listing
    assert "env-kling" in listing and "https://api-singapore.klingai.com" in listing
    assert "sk-deepseek-from-env" not in listing and "sk-kling-secret" not in listing
    db = (tmp_path / "home" / "tokenhub.db").read_bytes()
    assert b"sk-deepseek-from-env" not in db and b"sk-kling-secret" not in db  # encrypted at rest


def test_a_killed_process_leaves_no_hold_behind(tmp_path: Path, fake_openai_server: ServerThread):
    env = clean_env(tmp_path / "home")
    assert cli(["user", "create", "dev@example.com"], env).returncode == 0
    assert cli(["credits", "add", "dev@example.com", "5"], env).returncode == 0
    key = cli(["key", "create", "dev@example.com"], env).stdout.strip()
    assert cli(["channel", "add", "deepseek", "--api-key", "sk-upstream", "--base-url", f"{fake_openai_server.url}/v1"], env).returncode == 0

    served = Served(env)
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    body = {"model": "deepseek/deepseek-v4-pro", "messages": [{"role": "user", "content": "#fake:hang"}], "max_tokens": 100}
    conn.request("POST", "/api/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    db = sqlite3.connect(tmp_path / "home" / "tokenhub.db")
    deadline = time.monotonic() + 10
    while db.execute("select count(*) from requests where state = 'held'").fetchone()[0] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    balance_during = db.execute("select balance from users where email = 'dev@example.com'").fetchone()[0]
    assert balance_during < 5_000_000_000  # the hold is out of the balance
    served.kill()  # kill -9, mid-request
    conn.close()
    assert db.execute("select count(*) from requests where state = 'held'").fetchone()[0] == 1

    Served(env).stop()  # the next start cleans up
    state, status = db.execute("select state, status from requests").fetchone()
    assert (state, status) == ("released", "interrupted")
    assert db.execute("select balance from users where email = 'dev@example.com'").fetchone()[0] == 5_000_000_000
    db.close()
    check = cli(["ledger", "check"], env)
    assert check.returncode == 0, check.stdout


def test_sigterm_drains_open_streams_then_exits(tmp_path: Path, fake_openai_server: ServerThread):
    """SIGTERM: no new connections, the streams in flight run to their end, every hold is settled."""
    import signal
    import threading

    env = clean_env(tmp_path / "home")
    assert cli(["user", "create", "dev@example.com"], env).returncode == 0
    assert cli(["credits", "add", "dev@example.com", "50"], env).returncode == 0
    key = cli(["key", "create", "dev@example.com"], env).stdout.strip()
    assert cli(["channel", "add", "deepseek", "--api-key", "sk-upstream", "--base-url", f"{fake_openai_server.url}/v1"], env).returncode == 0
    served = Served(env)
    results: list[bytes] = []

    def stream() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        body = {"model": "deepseek/deepseek-v4-pro", "stream": True, "messages": [{"role": "user", "content": "#fake:tokens=40 #fake:delay=0.05"}]}
        conn.request("POST", "/api/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        results.append(conn.getresponse().read())
        conn.close()

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.8)  # the streams are under way (40 chunks x 50 ms = 2 s each)
    served.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = False
    try:
        http.client.HTTPConnection("127.0.0.1", served.port, timeout=2).request("GET", "/healthz")
    except OSError:
        refused = True
    assert refused, "a draining gateway takes no new connections"
    for t in threads:
        t.join(30)
    assert served.proc.wait(30) == 0
    served.output()
    assert len(results) == 4 and all(r.rstrip().endswith(b"data: [DONE]") for r in results)
    db = sqlite3.connect(tmp_path / "home" / "tokenhub.db")
    assert db.execute("select count(*) from requests where state = 'held'").fetchone()[0] == 0
    assert db.execute("select count(*) from requests where status = 'ok'").fetchone()[0] == 4
    db.close()
    assert cli(["ledger", "check"], env).returncode == 0


def test_channel_test_probes_each_channel(tmp_path: Path, fake_openai_server: ServerThread, media_servers):
    env = clean_env(tmp_path / "home")
    assert cli(["channel", "add", "deepseek", "--api-key", "sk-upstream", "--base-url", f"{fake_openai_server.url}/v1", "--name", "good"], env).returncode == 0
    assert cli(["channel", "add", "deepseek", "--api-key", "sk-wrong", "--base-url", f"{fake_openai_server.url}/v1", "--name", "badkey"], env).returncode == 0
    assert cli(["channel", "add", "ark", "--api-key", "x", "--base-url", media_servers["ark"].url + "/api/v3", "--name", "media"], env).returncode == 0
    result = cli(["channel", "test"], env)
    assert result.returncode == 1, result.stdout + result.stderr  # one channel fails
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert " ok " in rows["good"] and "answered" in rows["good"] and " ms " in rows["good"]
    assert "FAILED" in rows["badkey"] and "credentials" in rows["badkey"]
    assert "sk-wrong" not in result.stdout and "not probed" in rows["media"]
    only_good = cli(["channel", "test", "good"], env)
    assert only_good.returncode == 0 and "badkey" not in only_good.stdout
    assert cli(["channel", "test", "nope"], env).returncode == 1
