"""Per-channel timeouts: connect, first byte (until the headers) and idle (between chunks)."""

from __future__ import annotations

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tokenhub.channels import service as channels
from tokenhub.simulator.openai import FakeOpenAIState


def test_first_byte_timeout_of_one_channel_fails_over_to_the_next(gateway: Harness, upstream_url: str, fake_openai: FakeOpenAIState):
    priced_model(gateway, upstream_url, channel=False)
    gateway.channel("openai-compatible", upstream_url, models=[MODEL], name="impatient", priority=10, timeouts={"first_byte_timeout": 0.3})
    gateway.channel("openai-compatible", upstream_url, models=[MODEL], name="patient", priority=0)
    cust = customer(gateway)
    before = len(fake_openai.requests)
    completion = gateway.client(cust.key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello #fake:slow_first=0.8"}]
    )
    assert completion.choices[0].message.content
    assert len(fake_openai.requests) - before == 2  # the impatient channel gave up, the patient one answered
    impatient = next(c for c in gateway.gw.directory.channels() if c.name == "impatient")
    assert gateway.gw.health.snapshot(impatient.id)["consecutive_failures"] == 1


def test_idle_timeout_ends_a_stalled_stream_with_an_error_event_and_bills_what_was_sent(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url, channel=False)
    gateway.channel("openai-compatible", upstream_url, models=[MODEL], name="stalls", timeouts={"idle_timeout": 0.25})
    cust = customer(gateway)
    client = gateway.client(cust.key)
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "tell me #fake:delay=0.6"}], stream=True
        ):
            received.append(chunk)
    assert received, "the first chunk arrived before the stall"
    assert "stopped sending" in str(err.value)
    delivered = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    gateway.flush()
    summary = gateway.credits(cust.email)
    # billed for what was delivered: here only the opening (role) chunk came before the stall, so nothing
    assert delivered == "" and summary["total_usage_nanos"] == 0
    assert summary["balance_nanos"] == 10_000_000_000  # the hold was released
    assert gateway.ledger_report().ok


def test_timeouts_are_validated_and_shown(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url, channel=False)
    for bad in ({"idle_timeout": 0}, {"connect_timeout": "soon"}, {"first_byte_timeout": 99999}):
        with pytest.raises(Exception) as err:
            gateway.channel("openai-compatible", upstream_url, models=[MODEL], timeouts=bad)
        assert getattr(err.value, "status", None) == 400
    made = gateway.channel("openai-compatible", upstream_url, models=[MODEL], name="t", timeouts={"connect_timeout": "2.5"})
    assert made["connect_timeout"] == 2.5 and made["idle_timeout"] is None
    listed = gateway.read(channels.list_channels)
    assert listed[0]["connect_timeout"] == 2.5
