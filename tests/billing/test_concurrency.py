"""N concurrent requests against a balance that covers k: exactly k go through, on both databases.

Real concurrency: client threads released together by a barrier, two gateway instances (separate
event loops, engines and ledger writers, as two processes would have) sharing one database.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from sqlalchemy import func, select

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, cost_nanos, priced_model
from tokenhub.storage.tables import requests

N, K = 24, 7
MAX_TOKENS = 1000
# Hold per request: prompt bound (request bytes) at $3/M + 1000 output tokens at $15/M.


def hold_for(body_bytes: int) -> int:
    return cost_nanos(body_bytes + 8, MAX_TOKENS)  # upper bound of the prompt: its bytes + message framing


def run_concurrently(gateways: list[Harness], keys: list[str], n: int) -> list[object]:
    barrier = threading.Barrier(n)
    clients = [gw.client(key) for gw, key in zip(gateways, keys)]

    def call(i: int) -> object:
        client = clients[i % len(clients)]
        barrier.wait()
        try:
            return client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "#fake:slow_first=0.8"}],
                max_tokens=MAX_TOKENS,
            )
        except openai.APIStatusError as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, range(n)))


@pytest.mark.parametrize("instances", [1, 2])
def test_exactly_k_of_n_concurrent_requests_are_admitted(database_url: str, make_gateway, upstream_url: str, instances: int):
    first = make_gateway(database_url)
    priced_model(first, upstream_url)
    gateways = [first] + [make_gateway(database_url) for _ in range(instances - 1)]
    for gw in gateways[1:]:
        gw.run(gw.gw.directory.load())

    body_len = len(b'{"model":"test/priced","messages":[{"role":"user","content":"#fake:slow_first=0.8"}],"max_tokens":1000}')
    hold = hold_for(body_len)
    first.user("race@example.com", None)
    from tokenhub.billing.service import add_credits

    first.write(lambda c: add_credits(c, "race@example.com", K * hold + hold // 2))  # covers k holds, not k+1
    key = first.key("race@example.com")
    for gw in gateways[1:]:
        gw.run(gw.gw.directory.load())

    results = run_concurrently(gateways, [key] * len(gateways), N)
    admitted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert len(admitted) == K, [getattr(r, "message", r) for r in refused][:3]
    assert len(refused) == N - K
    assert all(r.status_code == 402 and r.code == "insufficient_credits" for r in refused)

    for gw in gateways:
        gw.flush()
    summary = first.credits("race@example.com")
    assert summary["balance_nanos"] >= 0
    assert summary["held_nanos"] == 0
    charged = sum(cost_nanos(a.usage.prompt_tokens, a.usage.completion_tokens) for a in admitted)
    assert summary["total_usage_nanos"] == charged
    assert summary["balance_nanos"] == K * hold + hold // 2 - charged
    count = first.read(lambda c: c.scalar(select(func.count()).select_from(requests)))
    assert count == K  # refused requests never reached the ledger
    assert first.ledger_report().ok
