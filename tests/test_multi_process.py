"""Several `tokenhub serve` processes as one gateway: PostgreSQL + Redis shared, or --workers N on one port.

Real processes, real HTTP, the fake upstream on loopback. What must hold: no overdraw under a
burst spread across processes, the ledger checks out, rate limits are global, a revoked key stops
working everywhere within a second, a kill -9 mid-stream leaves no hold once a process restarts,
and the gateway fails closed (503) when its database or Redis is unreachable.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import asyncpg
import pytest

from tests.support.harness import create_pg_database, drop_pg_database
from tests.support.processes import Served, clean_env, cli
from tests.support.servers import ServerThread
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres

MODEL = "deepseek/deepseek-v4-pro"
REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "multi-process-test-secret"


def post(port: int, key: str, body: dict, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/api/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def hello(max_tokens: int = 50) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "say hello"}], "max_tokens": max_tokens}


def pg_rows(dsn: str, sql: str) -> list:
    import asyncio

    async def go() -> list:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    name = create_pg_database()
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    drop_pg_database(name)


def shared_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = clean_env(home)
    env.update({
        "TOKENHUB_DATABASE_URL": database_url, "TOKENHUB_SECRET_KEY": SECRET, "TOKENHUB_REDIS_URL": REDIS_URL,
        "TOKENHUB_HOLD_SWEEP_AFTER": "2", "TOKENHUB_LOG_FORMAT": "json",
    })  # fmt: skip
    env.update(extra)
    return env


def setup_customer(env: dict[str, str], upstream: str, credits: str, *key_args: str) -> str:
    assert cli(["user", "create", "dev@example.com"], env).returncode == 0
    assert cli(["credits", "add", "dev@example.com", credits], env).returncode == 0
    made = cli(["key", "create", "dev@example.com", *key_args], env)
    assert made.returncode == 0, made.stderr
    assert cli(["channel", "add", "deepseek", "--api-key", "sk-upstream", "--base-url", f"{upstream}/v1"], env).returncode == 0
    return made.stdout.strip()


@pytest.fixture
def two_gateways(tmp_path: Path, pg_dsn: str) -> Iterator[tuple[dict[str, str], list[Served]]]:
    env = shared_env(tmp_path / "a", pg_dsn)
    served: list[Served] = []
    yield env, served
    for process in served:
        if process.proc.poll() is None:
            process.stop()


def test_a_burst_across_two_processes_never_overdraws(two_gateways, fake_openai_server: ServerThread, pg_dsn: str):
    env, served = two_gateways
    key = setup_customer(env, fake_openai_server.url, "0.01")
    served += [Served(env), Served(shared_env(Path(env["TOKENHUB_HOME"]).parent / "b", env["TOKENHUB_DATABASE_URL"]))]
    body = hello(max_tokens=2000)  # each hold is far above each charge: admission decides
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: post(served[i % 2].port, key, body)[0], range(48)))
    assert results.count(200) >= 2 and results.count(402) >= 1, results
    assert set(results) <= {200, 402}
    (user,) = pg_rows(pg_dsn, "select balance from users where email = 'dev@example.com'")
    time.sleep(0.2)  # settlements are committed within milliseconds of each answer
    held = pg_rows(pg_dsn, "select count(*) from requests where state = 'held'")[0][0]
    assert held == 0
    (row,) = pg_rows(pg_dsn, "select balance, (select coalesce(sum(cost_nanos), 0) from requests) as spent from users")
    assert row["balance"] >= 0 and row["balance"] + row["spent"] == 10_000_000
    assert results.count(200) == pg_rows(pg_dsn, "select count(*) from requests where status = 'ok'")[0][0]
    check = cli(["ledger", "check"], env)
    assert check.returncode == 0, check.stdout


def test_rate_limits_are_global_and_revocation_reaches_both_within_a_second(two_gateways, fake_openai_server: ServerThread):
    env, served = two_gateways
    key = setup_customer(env, fake_openai_server.url, "5", "--rpm", "5")
    served += [Served(env), Served(env)]
    statuses = [post(served[i % 2].port, key, hello())[0] for i in range(8)]
    assert statuses == [200] * 5 + [429] * 3  # exactly the limit, whichever process answered
    status, headers, _ = post(served[0].port, key, hello())
    assert status == 429 and int(headers["retry-after"]) >= 1 and headers["x-ratelimit-remaining-requests"] == "0"

    assert cli(["key", "update", "1", "--rpm", "none"], env).returncode == 0
    assert cli(["key", "revoke", "1"], env).returncode == 0
    revoked_at = time.monotonic()
    pending = {0, 1}
    while pending and time.monotonic() - revoked_at < 5:
        for i in list(pending):
            if post(served[i].port, key, hello())[0] == 401:
                pending.discard(i)
        time.sleep(0.05)
    took = time.monotonic() - revoked_at
    assert not pending and took < 1.6, f"revocation took {took:.2f}s to reach both processes"


def test_kill_9_mid_stream_then_restart_leaves_no_hold(two_gateways, fake_openai_server: ServerThread, pg_dsn: str):
    env, served = two_gateways
    key = setup_customer(env, fake_openai_server.url, "5")
    victim, survivor = Served(env), Served(env)
    served += [victim, survivor]
    conn = http.client.HTTPConnection("127.0.0.1", victim.port, timeout=30)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "#fake:tokens=200 #fake:delay=0.05"}]}
    conn.request("POST", "/api/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.readline().startswith(b"data: ")  # mid-stream
    assert pg_rows(pg_dsn, "select count(*) from requests where state = 'held'")[0][0] == 1
    victim.kill()
    conn.close()
    restarted = Served(env)
    served.append(restarted)
    deadline = time.monotonic() + 15
    while pg_rows(pg_dsn, "select count(*) from requests where state = 'held'")[0][0]:
        assert time.monotonic() < deadline, "the killed process's hold was never released"
        time.sleep(0.2)
    (row,) = pg_rows(pg_dsn, "select state, status from requests")
    assert (row["state"], row["status"]) == ("released", "interrupted")
    assert pg_rows(pg_dsn, "select balance from users")[0]["balance"] == 5_000_000_000
    assert post(survivor.port, key, hello())[0] == 200 and post(restarted.port, key, hello())[0] == 200
    assert cli(["ledger", "check"], env).returncode == 0


def test_unreachable_database_or_redis_fails_closed(tmp_path: Path, pg_dsn: str, fake_openai_server: ServerThread):
    db_proxy, redis_proxy = TcpProxy("127.0.0.1", 5432), TcpProxy("127.0.0.1", 6379)
    try:
        env = shared_env(
            tmp_path / "home",
            pg_dsn.replace(":5432/", f":{db_proxy.port}/"),
            TOKENHUB_REDIS_URL=f"redis://127.0.0.1:{redis_proxy.port}/0",
        )
        limited = setup_customer(env, fake_openai_server.url, "5", "--rpm", "100")
        free = cli(["key", "create", "dev@example.com", "--name", "no-limits"], env).stdout.strip()
        gateway = Served(env)
        try:
            assert post(gateway.port, limited, hello())[0] == 200

            redis_proxy.sever()
            status, _, raw = post(gateway.port, limited, hello())
            assert status == 503 and json.loads(raw)["error"]["code"] == "limits_unavailable"
            assert post(gateway.port, free, hello())[0] == 200  # no rate limits: no need of Redis
            redis_proxy.restore()

            db_proxy.sever()
            for key in (limited, free):
                status, _, raw = post(gateway.port, key, hello())
                assert status == 503, raw  # never free service, never a 401
                assert json.loads(raw)["error"]["code"] == "storage_unavailable"
            ready = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
            ready.request("GET", "/readyz")
            assert ready.getresponse().status == 503
            ready.close()
            db_proxy.restore()
            deadline = time.monotonic() + 15
            while post(gateway.port, free, hello())[0] != 200:
                assert time.monotonic() < deadline, "the gateway did not recover when the database came back"
                time.sleep(0.3)
        finally:
            gateway.stop()
    finally:
        db_proxy.close()
        redis_proxy.close()
    assert pg_rows(pg_dsn, "select count(*) from requests where state = 'held'")[0][0] == 0
    assert cli(["ledger", "check"], {**env, "TOKENHUB_DATABASE_URL": pg_dsn}).returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel spreads a port's connections on Linux")
def test_workers_share_the_connections_a_client_opens_at_once(tmp_path: Path, fake_openai_server: ServerThread):
    """A client that opens its keep-alive connections together (a load balancer, a pool) reaches every
    worker, even on one core: each listens on a socket of its own on the port and the kernel spreads the
    connections (with one socket shared by all, the worker that ran first accepted every connection
    waiting; this test then fails)."""
    env = clean_env(tmp_path / "home")
    key = setup_customer(env, fake_openai_server.url, "5")
    gateway = Served(env, "--workers", "2")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        deadline = time.monotonic() + 30
        started: set[str] = set()
        while len(started) < 2:  # both workers listening (the second may start a moment later)
            assert time.monotonic() < deadline, "the second worker never answered"
            started.add(post(gateway.port, key, hello())[1]["x-request-id"][:20])
        # On one core, as a worker busy with other requests is: whichever runs first takes all it can accept.
        for pid in [gateway.proc.pid, *map(int, Path(f"/proc/{gateway.proc.pid}/task/{gateway.proc.pid}/children").read_text().split())]:
            os.sched_setaffinity(pid, {min(os.sched_getaffinity(0))})
        conns = [http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30) for _ in range(16)]
        burst = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in conns]
        for sock in burst:  # all sent before either worker wakes, as a busy pool's connections are
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", gateway.port))
        for conn, sock in zip(conns, burst):
            select.select([], [sock], [], 10)
            sock.setblocking(True)
            sock.settimeout(30)
            conn.sock = sock
        served: list[set[str]] = []
        for conn in conns:
            seen = set()
            for _ in range(2):
                conn.request("POST", "/api/v1/chat/completions", json.dumps(hello()), headers)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
                seen.add(resp.getheader("x-request-id")[:20])
            served.append(seen)
            conn.close()
        assert all(len(seen) == 1 for seen in served)  # a connection stays with its worker
        assert set().union(*served) == started  # and the 16 went to both (all to one: p = 2^-15)
    finally:
        gateway.proc.send_signal(signal.SIGTERM)
        assert gateway.proc.wait(30) == 0
    assert cli(["ledger", "check"], env).returncode == 0


def test_workers_share_one_port_and_log_json_with_request_ids(tmp_path: Path, fake_openai_server: ServerThread):
    env = clean_env(tmp_path / "home")
    env["TOKENHUB_LOG_FORMAT"] = "json"
    key = setup_customer(env, fake_openai_server.url, "5")
    gateway = Served(env, "--workers", "2", "--access-log")
    try:
        prefixes: set[str] = set()
        sent = 0
        deadline = time.monotonic() + 30  # a worker still starting on a loaded machine answers late, not never
        while sent < 30 or (len(prefixes) < 2 and time.monotonic() < deadline):
            status, headers, _ = post(gateway.port, key, hello())
            assert status == 200
            sent += 1
            prefixes.add(headers["x-request-id"][:20])  # each process mints ids under its own prefix
        assert len(prefixes) == 2, "both workers answered"
    finally:
        gateway.proc.send_signal(signal.SIGTERM)
        assert gateway.proc.wait(30) == 0
    output = gateway.output()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "aiohttp.access" and line["path"] == "/api/v1/chat/completions"]
    assert len(access) == sent and all(re.fullmatch(r"gen-[0-9a-f]{28}", line["request_id"]) for line in access)
    assert key not in output and "sk-upstream" not in output
    assert cli(["ledger", "check"], env).returncode == 0
