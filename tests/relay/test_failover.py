"""Routing that survives provider failures: failover before the first byte, breakers, cool-downs."""

from __future__ import annotations

import socket

import openai
import pytest
from aiohttp import web

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tests.support.servers import ServerThread
from tokenhub.simulator.openai import FakeOpenAIState


class Broken:
    """An upstream that fails the same way every time, and counts its hits."""

    def __init__(self, status: int = 503, *, body: bytes | None = None, headers: dict[str, str] | None = None, reset: bool = False):
        self.hits = 0

        async def handler(request: web.Request) -> web.StreamResponse:
            self.hits += 1
            await request.read()
            if reset:
                assert request.transport is not None
                request.transport.abort()
                return web.Response()
            return web.Response(status=status, body=body or b'{"error":{"message":"down","type":"server_error"}}',
                                content_type="application/json", headers=headers)

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        self.server = ServerThread(app).start()
        self.url = f"{self.server.url}/v1"


@pytest.fixture
def broken_servers():
    made: list[Broken] = []

    def make(*args, **kwargs) -> Broken:
        made.append(Broken(*args, **kwargs))
        return made[-1]

    yield make
    for b in made:
        b.server.stop()


def two_channels(gw: Harness, primary_url: str, backup_url: str) -> None:
    priced_model(gw, primary_url, channel=False)
    gw.channel("openai-compatible", primary_url, models=[MODEL], name="primary", priority=10)
    gw.channel("openai-compatible", backup_url, models=[MODEL], name="backup", priority=0)


MSG = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("fault", ["503", "500", "502", "429", "reset", "dead"])
@pytest.mark.parametrize("stream", [False, True])
def test_failure_before_output_moves_to_the_next_channel(gateway: Harness, upstream_url, broken_servers, fake_openai: FakeOpenAIState, fault, stream):
    if fault == "dead":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            primary = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        broken = None
    else:
        broken = broken_servers(reset=True) if fault == "reset" else broken_servers(int(fault), headers={"Retry-After": "7"} if fault == "429" else None)
        primary = broken.url
    two_channels(gateway, primary, upstream_url)
    cust = customer(gateway)
    client = gateway.client(cust.key)
    result = client.chat.completions.create(model=MODEL, messages=MSG, stream=stream)
    text = "".join(c.choices[0].delta.content or "" for c in result if c.choices) if stream else result.choices[0].message.content
    assert text == "Hello! This is a fake reply."
    assert len(fake_openai.requests) == 1  # the backup answered
    if broken:
        assert broken.hits == 1
    gateway.flush()
    summary = gateway.credits(cust.email)
    assert summary["held_nanos"] == 0 and summary["total_usage_nanos"] > 0  # charged once, for the answer
    assert gateway.ledger_report().ok


@pytest.mark.parametrize(("status", "code"), [(400, "upstream_bad_request"), (401, "upstream_auth_failed")])
def test_client_errors_and_bad_credentials_are_not_retried(gateway: Harness, upstream_url, broken_servers, fake_openai: FakeOpenAIState, status, code):
    broken = broken_servers(status)
    two_channels(gateway, broken.url, upstream_url)
    cust = customer(gateway)
    with pytest.raises(openai.APIStatusError) as exc:
        gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG)
    assert exc.value.code == code
    assert fake_openai.requests == [] and broken.hits == 1
    if status == 401:
        assert gateway.gw.health.snapshot(gateway.gw.directory.routes(MODEL)[0].channel.id)["state"] == "misconfigured"


def test_no_failover_after_output_began(gateway: Harness, upstream_url, fake_openai: FakeOpenAIState):
    # both channels are the same fake: the first one breaks mid-stream; the client gets an error, not a second answer
    two_channels(gateway, upstream_url, upstream_url)
    cust = customer(gateway)
    with pytest.raises(openai.APIError):
        for _ in gateway.client(cust.key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:tokens=20 #fake:reset"}], stream=True):
            pass
    assert len(fake_openai.requests) == 1


def test_breaker_opens_skips_the_channel_then_half_opens(gateway: Harness, upstream_url, broken_servers, fake_openai: FakeOpenAIState):
    broken = broken_servers(503)
    two_channels(gateway, broken.url, upstream_url)
    cust = customer(gateway, credits_usd="20")
    client = gateway.client(cust.key)
    now = [1000.0]
    health = gateway.gw.health
    health._clock = lambda: now[0]
    for _ in range(5):
        client.chat.completions.create(model=MODEL, messages=MSG)
    assert broken.hits == 5  # five consecutive failures open the breaker
    primary_id = gateway.gw.directory.routes(MODEL)[0].channel.id
    assert health.snapshot(primary_id)["state"] == "open"
    for _ in range(3):
        client.chat.completions.create(model=MODEL, messages=MSG)
    assert broken.hits == 5  # skipped while open
    now[0] += 11  # past the first cool-down (10 s): one probe goes to the primary
    client.chat.completions.create(model=MODEL, messages=MSG)
    assert broken.hits == 6
    assert health.snapshot(primary_id)["state"] == "open"  # the probe failed: open again, longer
    now[0] += 11
    client.chat.completions.create(model=MODEL, messages=MSG)
    assert broken.hits == 6  # the second cool-down is 20 s


def test_retry_after_cools_the_channel_down(gateway: Harness, upstream_url, broken_servers, fake_openai: FakeOpenAIState):
    broken = broken_servers(429, headers={"Retry-After": "30"})
    two_channels(gateway, broken.url, upstream_url)
    cust = customer(gateway)
    client = gateway.client(cust.key)
    now = [5000.0]
    gateway.gw.health._clock = lambda: now[0]
    client.chat.completions.create(model=MODEL, messages=MSG)
    client.chat.completions.create(model=MODEL, messages=MSG)
    assert broken.hits == 1  # resting for 30 s
    now[0] += 31
    client.chat.completions.create(model=MODEL, messages=MSG)
    assert broken.hits == 2


def test_when_every_channel_fails_the_client_gets_the_last_error(gateway: Harness, broken_servers):
    a, b = broken_servers(503), broken_servers(502)
    two_channels(gateway, a.url, b.url)
    cust = customer(gateway)
    with pytest.raises(openai.InternalServerError) as exc:
        gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG)
    assert exc.value.status_code in (502, 503) and a.hits == 1 and b.hits == 1
    gateway.flush()
    assert gateway.credits(cust.email)["total_usage_nanos"] == 0


def test_operators_see_channel_health(gateway: Harness, upstream_url, broken_servers, fake_openai: FakeOpenAIState):
    import json
    import urllib.request

    broken = broken_servers(503)
    two_channels(gateway, broken.url, upstream_url)
    cust = customer(gateway)
    gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG)
    gateway.user("ops@example.com", None, admin=True)
    admin_key = gateway.key("ops@example.com")
    req = urllib.request.Request(f"{gateway.base_url.removesuffix('/v1')}/admin/channels", headers={"Authorization": f"Bearer {admin_key}"})
    listed = {c["name"]: c for c in json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]}
    assert listed["primary"]["health"]["consecutive_failures"] == 1 and listed["primary"]["health"]["last_error"]
    assert listed["backup"]["health"]["state"] == "closed"
