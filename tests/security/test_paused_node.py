"""A node that was paused, or cut off from its database, past the sweep interval never serves free.

Two `tokenhub serve` processes on one PostgreSQL and Redis (real processes, real HTTP). While one is
frozen (SIGSTOP) or its database link is cut, the other's sweeper declares it dead and releases its
holds. When it comes back it must register again at once, charge what its streams delivered (a late
settlement, never below zero) and charge every request it serves afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.processes import Served, cli
from tests.support.servers import ServerThread
from tests.support.tcp_proxy import TcpProxy
from tests.test_multi_process import MODEL, hello, pg_dsn, pg_rows, post, setup_customer, shared_env  # noqa: F401

pytestmark = pytest.mark.postgres

SWEEP_AFTER = 2.0  # TOKENHUB_HOLD_SWEEP_AFTER in shared_env


def open_stream(port: int, key: str, prompt: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    conn.request("POST", "/api/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.readline().startswith(b"data: ")  # the stream has begun
    return conn, resp


def wait_for(predicate, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def instance_rows(dsn: str) -> int:
    return pg_rows(dsn, "select count(*) from instances")[0][0]


def assert_everything_charged(dsn: str, env: dict[str, str], expected_requests: int) -> None:
    wait_for(lambda: pg_rows(dsn, "select count(*) from requests where state = 'held'")[0][0] == 0, "a hold stayed open")
    rows = pg_rows(dsn, "select id, state, status, cost_nanos, overage_nanos from requests order by created_at")
    assert len(rows) == expected_requests
    free = [dict(r) for r in rows if r["cost_nanos"] == 0]
    assert not free, f"served free: {free}"
    assert all(r["status"] == "ok" and r["state"] == "settled" for r in rows), [dict(r) for r in rows]
    (user,) = pg_rows(dsn, "select balance from users")
    spent = pg_rows(dsn, "select coalesce(sum(cost_nanos), 0) as s from requests")[0]["s"]
    assert user["balance"] >= 0 and user["balance"] + spent == 5_000_000_000
    check = cli(["ledger", "check"], env)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_node_paused_past_the_sweep_interval_charges_what_it_serves(tmp_path: Path, pg_dsn: str, fake_openai_server: ServerThread):  # noqa: F811
    env = shared_env(tmp_path / "a", pg_dsn)
    key = setup_customer(env, fake_openai_server.url, "5")
    paused = Served(env)
    other = Served(shared_env(tmp_path / "b", pg_dsn))
    try:
        streams = [open_stream(paused.port, key, "#fake:tokens=40 #fake:delay=0.05") for _ in range(3)]
        os.kill(paused.proc.pid, signal.SIGSTOP)
        try:
            # The other node's sweeper finds the paused one silent, releases its holds, deletes its row.
            wait_for(lambda: pg_rows(pg_dsn, "select count(*) from requests where state = 'held'")[0][0] == 0,
                     "the other node never swept the paused one", timeout=SWEEP_AFTER * 10)
            assert instance_rows(pg_dsn) == 1
        finally:
            os.kill(paused.proc.pid, signal.SIGCONT)
        for conn, resp in streams:  # the streams carry on and finish: what they delivered is charged late
            rest = resp.read()
            assert b"[DONE]" in rest
            conn.close()
        # Served right after waking up, before and after its next heartbeat: every one charged.
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda i: post(paused.port, key, hello())[0], range(8)))
        assert statuses == [200] * 8
        wait_for(lambda: instance_rows(pg_dsn) == 2, "the paused node never registered again", timeout=SWEEP_AFTER * 5)
        time.sleep(SWEEP_AFTER * 1.5)  # the other node sweeps again meanwhile: nothing of the awake node is released
        assert post(paused.port, key, hello())[0] == 200
        assert "registered again" in paused.stop()
    finally:
        other.stop()
        if paused.proc.poll() is None:
            paused.kill()
    assert_everything_charged(pg_dsn, env, expected_requests=3 + 8 + 1)


def test_a_node_cut_off_from_its_database_past_the_sweep_interval_charges_what_it_served(
    tmp_path: Path, pg_dsn: str, fake_openai_server: ServerThread  # noqa: F811
):
    proxy = TcpProxy("127.0.0.1", 5432)
    try:
        env = shared_env(tmp_path / "a", pg_dsn.replace(":5432/", f":{proxy.port}/"))
        key = setup_customer(env, fake_openai_server.url, "5")
        cut_off = Served(env)
        other = Served(shared_env(tmp_path / "b", pg_dsn))
        try:
            conn, resp = open_stream(cut_off.port, key, "#fake:tokens=80 #fake:delay=0.05")
            proxy.sever()
            wait_for(lambda: pg_rows(pg_dsn, "select count(*) from requests where state = 'held'")[0][0] == 0,
                     "the other node never swept the cut-off one", timeout=SWEEP_AFTER * 10)
            assert b"[DONE]" in resp.read()  # the stream ends while the database is away: its settlement waits
            conn.close()
            proxy.restore()
            wait_for(lambda: instance_rows(pg_dsn) == 2, "the cut-off node never registered again", timeout=SWEEP_AFTER * 10)
            wait_for(lambda: post(cut_off.port, key, hello())[0] == 200, "the node did not recover", timeout=15)
            assert [post(cut_off.port, key, hello())[0] for _ in range(3)] == [200] * 3
        finally:
            cut_off.stop()
            other.stop()
    finally:
        proxy.close()
    wait_for(lambda: pg_rows(pg_dsn, "select count(*) from requests where state = 'held'")[0][0] == 0, "a hold stayed open")
    assert_everything_charged(pg_dsn, {**env, "TOKENHUB_DATABASE_URL": pg_dsn}, expected_requests=1 + 1 + 3)
