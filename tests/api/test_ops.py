"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import re
import urllib.request
from typing import Callable

import pytest

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model


def get(gw: Harness, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{gw.server.url}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_health_and_readiness(gateway: Harness):
    assert get(gateway, "/healthz")[0] == 200
    status, body = get(gateway, "/readyz")
    assert status == 200 and '"ready"' in body
    gateway.gw.draining = True
    status, body = get(gateway, "/readyz")
    assert status == 503 and "draining" in body


def test_metrics_count_requests_tokens_and_cost(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    client = gateway.client(cust.key)
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True))
    status, text = get(gateway, "/metrics")
    assert status == 200
    assert f'tokenhub_requests_total{{endpoint="chat",model="{MODEL}",status="ok"}} 2.0' in text
    assert f'tokenhub_tokens_total{{kind="completion",model="{MODEL}"}} 12.0' in text
    assert "tokenhub_request_duration_seconds_bucket" in text and "tokenhub_time_to_first_byte_seconds_count" in text
    assert "tokenhub_holds_outstanding 0.0" in text
    # Histograms: cumulative buckets ending in +Inf at the count; the sum of the observations.
    for histogram in ("tokenhub_request_duration_seconds", "tokenhub_time_to_first_byte_seconds"):
        buckets = [float(v) for v in re.findall(rf'^{histogram}_bucket{{endpoint="chat",le="[^"]+"}} (\S+)$', text, re.M)]
        assert len(buckets) == 16 and buckets == sorted(buckets) and buckets[-1] == 2.0, (histogram, buckets)
        assert f'{histogram}_count{{endpoint="chat"}} 2.0' in text
        assert 0 < float(re.search(rf'^{histogram}_sum{{endpoint="chat"}} (\S+)$', text, re.M).group(1)) < 10
    # The cost counted is what the ledger charged.
    gateway.flush()
    charged = gateway.credits(cust.email)["total_usage_nanos"]
    assert charged > 0 and f'tokenhub_cost_nanodollars_total{{model="{MODEL}"}} {float(charged)}' in text
    assert 'tokenhub_channel_breaker_state{channel="fake-test-priced"} 0.0' in text


def test_metrics_count_the_ledger_groups_checked_on_known_figures(make_gateway: Callable[..., Harness], database_url: str, upstream_url: str):
    """On PostgreSQL a ledger group on figures the process knows is checked and committed in one round
    trip; a top-up meanwhile changes them but leaves the room, so the next check passes too; a refund of
    nearly everything leaves too little, so the next check fails and the request is refused. SQLite locks
    the whole file for every group and checks none."""
    import openai

    from tokenhub.billing import service as billing

    gw = make_gateway(database_url)
    priced_model(gw, upstream_url)
    cust = customer(gw)
    client = gw.client(cust.key)

    def checked() -> dict[str, float]:
        gw.flush()
        status, text = get(gw, "/metrics")
        assert status == 200
        return {m[0]: float(m[1]) for m in re.findall(r'tokenhub_ledger_checked_groups_total\{result="(\w+)"\} (\S+)', text)}

    for _ in range(3):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    first = checked()
    gw.write(lambda c: billing.add_credits(c, cust.email, 1_000_000, note="top-up"))  # the account's figures change
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    then = checked()
    left = gw.credits(cust.email)["balance_nanos"]
    gw.write(lambda c: billing.add_credits(c, cust.email, 1 - left, kind="refund"))  # one nano left
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 402
    last = checked()
    if database_url.startswith("sqlite"):
        assert first == then == last == {"passed": 0.0, "failed": 0.0}
    else:
        assert first["passed"] >= 2 and first["failed"] == 0  # the groups after the first one
        assert then["passed"] > first["passed"] and then["failed"] == 0  # changed, with room
        assert last["failed"] == 1
    assert gw.ledger_report().ok

