"""A client that hangs up before the first byte: noticed within a second, not when the upstream answers.

Before, the hold and the key's concurrency slot stayed taken until the upstream's first-byte
timeout (300 s), so a ``concurrency 1`` key was refused meanwhile, and the upstream kept working
for nobody. Now the upstream call is closed, the request is recorded ``client_closed`` at no cost,
and the slot is free again at once.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import openai
import pytest
from sqlalchemy import select

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tokenhub.simulator.openai import FakeOpenAIState
from tokenhub.storage.tables import requests

FREED_WITHIN = 5.0  # seconds; generous (the gateway looks every 0.25 s) — the upstream would answer after 60


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def rows(gw: Harness) -> list:
    async def fetch(conn):
        return (await conn.execute(select(requests).order_by(requests.c.created_at))).all()

    return gw.read(fetch)


@pytest.mark.parametrize("stream", [False, True])
def test_leaving_before_the_first_byte_releases_the_hold_and_the_slot(gateway: Harness, upstream_url: str,
                                                                      fake_openai: FakeOpenAIState, stream: bool):  # fmt: skip
    priced_model(gateway, upstream_url)
    cust = customer(gateway, limits={"concurrency": 1})
    url = urlsplit(gateway.base_url)

    body = json.dumps({"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "#fake:slow_first=60"}]}).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(
        b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {cust.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    wait_for(lambda: fake_openai.active_requests == 1)  # held, admitted, and waiting for the upstream
    sock.close()  # the client gives up
    left = time.monotonic()

    client = gateway.client(cust.key)
    while True:  # the same concurrency-1 key gets through as soon as the first request is let go
        try:
            reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
            break
        except openai.RateLimitError:
            assert time.monotonic() - left < FREED_WITHIN, "the slot stayed taken after the client left"
            time.sleep(0.05)
    assert reply.choices[0].message.content

    wait_for(lambda: fake_openai.cancelled_requests == 1)  # the upstream saw its connection closed
    first, second = rows(gateway)
    assert (first.state, first.status, first.cost_nanos) == ("released", "client_closed", 0)
    assert (second.state, second.status) == ("settled", "ok")
    summary = gateway.credits(cust.email)
    assert summary["held_nanos"] == 0 and summary["total_usage_nanos"] == second.cost_nanos
    assert gateway.ledger_report().ok
