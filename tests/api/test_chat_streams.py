"""Streams that do not end well: the client leaves, the upstream breaks. Billing follows what was delivered."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, cost_nanos, customer, priced_model
from tokenhub.simulator.openai import FakeOpenAIState


@pytest.fixture
def setup(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    return gateway, cust, gateway.client(cust.key)



def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_client_disconnect_cancels_upstream_and_bills_what_was_delivered(setup, fake_openai: FakeOpenAIState):
    gw, cust, _ = setup
    url = urlsplit(gw.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "#fake:tokens=400 #fake:delay=0.01"}]}
    conn.request("POST", "/api/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {cust.key}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    request_id = resp.getheader("x-request-id")
    received = b""
    while received.count(b"\n\n") < 20:
        received += resp.read1(4096)
    conn.sock.close()  # hang up mid-stream
    conn.close()

    wait_for(lambda: fake_openai.cancelled_streams >= 1)  # the upstream request was cancelled too
    wait_for(lambda: gw.request_row(request_id).state != "held")
    row = gw.request_row(request_id)
    assert row.status == "client_closed"
    assert row.estimated is True
    full = cost_nanos(row.prompt_tokens, 400)
    assert 0 < row.cost_nanos < full
    assert row.completion_tokens >= 19  # at least what the client had already received
    summary = gw.credits(cust.email)
    assert summary["held_nanos"] == 0
    assert summary["total_usage_nanos"] == row.cost_nanos
    assert gw.ledger_report().ok


@pytest.mark.parametrize(("directive", "status"), [("truncate", "truncated"), ("reset", "truncated"), ("malformed", "truncated"), ("error_mid", "upstream_error")])
def test_broken_stream_ends_with_an_error_event_and_bills_delivered_text(setup, directive: str, status: str):
    gw, cust, client = setup
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": f"#fake:tokens=30 #fake:{directive}"}], stream=True
    )
    request_id = raw.headers["x-request-id"]
    received = []
    with pytest.raises(openai.APIError):
        for chunk in raw.parse():
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert received, "some content arrived before the failure"
    gw.flush()
    row = gw.request_row(request_id)
    assert row.status == status
    assert row.estimated is True and row.cost_nanos > 0
    assert row.cost_nanos < cost_nanos(row.prompt_tokens, 30)
    assert gw.ledger_report().ok


def test_stream_without_any_usage_is_estimated_and_flagged(setup):
    gw, cust, client = setup
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "#fake:no_usage"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    final = chunks[-1]
    assert final.usage is not None and final.usage.model_extra.get("estimated") is True
    assert final.usage.completion_tokens > 0
    gw.flush()
    row = gw.request_row(raw.headers["x-request-id"])
    assert row.status == "ok" and row.estimated is True
    assert row.cost_nanos == cost_nanos(row.prompt_tokens, row.completion_tokens)


def test_upstream_failure_before_output_charges_nothing(setup):
    gw, cust, client = setup
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:tokens=0 #fake:reset"}], stream=True))
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0
    assert gw.credits(cust.email)["held_nanos"] == 0
