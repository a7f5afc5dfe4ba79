"""Per-channel timeouts: connect, first byte (until the headers) and idle (between chunks)."""

from __future__ import annotations

import asyncio

import openai
import pytest
from aiohttp import web

from tests.conftest import UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tests.support.servers import ServerThread
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


def _stalling_upstream() -> web.Application:
    """An OpenAI-protocol upstream whose whole (non-streamed) answer starts, then stalls for a second."""

    async def completions(request: web.Request) -> web.StreamResponse:
        assert request.headers.get("Authorization") == f"Bearer {UPSTREAM_KEY}"
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"id":"chatcmpl-stall","object":"chat.completion",')
        await asyncio.sleep(1.0)
        await response.write(b'"created":1767225600,"model":"upstream-gpt-test","choices":[]}')
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


def test_idle_timeout_ends_a_whole_answer_that_stalls_and_charges_nothing(gateway: Harness):
    upstream = ServerThread(_stalling_upstream()).start()
    try:
        priced_model(gateway, f"{upstream.url}/v1", channel=False)
        gateway.channel("openai-compatible", f"{upstream.url}/v1", models=[MODEL], name="stalls", timeouts={"idle_timeout": 0.25})
        cust = customer(gateway)
        with pytest.raises(openai.APIStatusError) as err:
            gateway.client(cust.key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
        assert err.value.status_code == 504 and "stopped sending" in str(err.value)
        gateway.flush()
        summary = gateway.credits(cust.email)
        assert summary["total_usage_nanos"] == 0 and summary["held_nanos"] == 0
        assert gateway.ledger_report().ok
    finally:
        upstream.stop()


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
