"""Slow clients: a request head or body trickled in is cut off at its deadline, not held open.

TOKENHUB_HEADER_TIMEOUT bounds the time to a complete request head (and idle keep-alive connections);
TOKENHUB_BODY_TIMEOUT (plus TOKENHUB_BODY_MIN_RATE's allowance per byte received) the time to the
whole body. Real sockets against a real gateway: one in a test thread, and `tokenhub serve --workers 2`.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.support.harness import Harness
from tests.support.processes import Served, clean_env

LIMIT = 1.0  # the deadlines the gateways under test get (seconds)
GENEROUS = 12.0  # what "closed within the deadline" may take on a busy machine; the default deadlines are far longer


def _answer(sock: socket.socket, *, trickle: bytes = b"", started: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (seconds from
    ``started``). ``trickle`` is sent one byte at a time meanwhile, as a slow client would."""
    sock.settimeout(0.2)
    received = b""
    pending = trickle
    while time.monotonic() - started < GENEROUS + 5:
        if pending:
            try:
                sock.sendall(pending[:1])
                pending = pending[1:]
            except OSError:
                pending = b""
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - started


def partial_head(port: int) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applica")
        return _answer(sock, started=started)


def slow_body(port: int, path: str = "/api/v1/chat/completions") -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Authorization: Bearer th-whatever\r\nContent-Length: 100000\r\n\r\n{".encode()
        )
        return _answer(sock, trickle=b'"' * 60 + b"x" * 1000, started=started)


def idle(port: int) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return _answer(sock, started=time.monotonic())


@pytest.fixture
def gateway(make_gateway: Callable[..., Harness], sqlite_url: str) -> Harness:
    return make_gateway(sqlite_url, header_timeout=LIMIT, body_timeout=LIMIT)


def test_a_partial_request_head_is_closed_at_the_header_deadline(gateway: Harness):
    received, closed_after = partial_head(gateway.server.port)
    assert closed_after < GENEROUS, f"the connection stayed open {closed_after:.1f} s"
    assert received == b"" or received.startswith(b"HTTP/1.1 408")


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(gateway: Harness):
    _, closed_after = idle(gateway.server.port)
    assert closed_after < GENEROUS


@pytest.mark.parametrize("path", ["/api/v1/chat/completions", "/api/v1/messages", "/api/admin/users", "/login"])
def test_a_trickled_body_gets_408_and_the_connection_closed(gateway: Harness, path: str):
    received, closed_after = slow_body(gateway.server.port, path)
    assert closed_after < GENEROUS, f"the connection stayed open {closed_after:.1f} s"
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"request_timeout" in received or b"did not arrive" in received


def test_a_slow_but_steady_large_body_is_not_cut(make_gateway: Callable[..., Harness], sqlite_url: str):
    """The body deadline grows with what arrives: a client sending faster than the minimum rate finishes."""
    gateway = make_gateway(sqlite_url, body_timeout=LIMIT, body_min_rate=1_000)
    body = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * 3000 + b'"}]}'
    with socket.create_connection(("127.0.0.1", gateway.server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer th-nope\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        for start in range(0, len(body), 500):  # 6 pieces, 0.3 s apart: ~2 s in all, above the 1 s base deadline
            sock.sendall(body[start : start + 500])
            time.sleep(0.3)
        received, _ = _answer(sock, started=time.monotonic())
    assert received.startswith(b"HTTP/1.1 401"), received[:200]  # read whole, then refused for its key


def test_deadlines_hold_under_serve_with_workers(tmp_path: Path):
    env = clean_env(tmp_path / "home")
    env.update({"TOKENHUB_HEADER_TIMEOUT": str(LIMIT), "TOKENHUB_BODY_TIMEOUT": str(LIMIT), "TOKENHUB_LOG_FORMAT": "text"})
    served = Served(env, "--workers", "2")
    try:
        for _ in range(2):  # the kernel spreads connections over both workers
            received, closed_after = partial_head(served.port)
            assert closed_after < GENEROUS
            received, closed_after = slow_body(served.port)
            assert closed_after < GENEROUS
            assert received.startswith(b"HTTP/1.1 408"), received[:200]
    finally:
        served.stop()
