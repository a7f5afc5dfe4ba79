"""Every error status of /chat/completions, in OpenAI's format, and nothing charged for any of them."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import MODEL, customer, priced_model
from tokenhub.accounts import service as accounts
from tokenhub.catalog import service as catalog_service
from tokenhub.simulator.openai import FakeOpenAIState

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def setup(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    return gateway, cust, gateway.client(cust.key)


def post_raw(gw: Harness, body: bytes, key: str | None, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(f"{gw.base_url}/chat/completions", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def assert_openai_error(body: dict, code: str | None = None) -> dict:
    err = body["error"]
    assert set(err) == {"message", "type", "code", "param"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


def assert_nothing_charged(gw: Harness, email: str, balance: int = 10_000_000_000) -> None:
    gw.flush()
    summary = gw.credits(email)
    assert summary["balance_nanos"] == balance
    assert summary["held_nanos"] == 0
    assert summary["total_usage_nanos"] == 0
    assert gw.ledger_report().ok


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (json.dumps({"messages": MSG}).encode(), "model"),
        (json.dumps({"model": MODEL}).encode(), "messages"),
        (json.dumps({"model": MODEL, "messages": []}).encode(), "messages"),
        (json.dumps({"model": MODEL, "messages": ["hi"]}).encode(), "messages[0]"),
        (json.dumps({"model": MODEL, "messages": MSG, "max_tokens": -1}).encode(), "max_tokens"),
        (json.dumps({"model": MODEL, "messages": MSG, "max_tokens": "10"}).encode(), "max_tokens"),
        (json.dumps({"model": MODEL, "messages": MSG, "stream": "yes"}).encode(), "stream"),
        (json.dumps({"model": MODEL, "messages": MSG, "n": 0}).encode(), "n"),
        (b'{"model": "' + b"\xff\xfe" + b'", "messages": []}', None),
        (b"[" * 5000 + b"]" * 5000, None),
    ],
)
def test_bad_requests_are_400_naming_the_field(setup, body: bytes, param: str | None):
    gw, cust, _ = setup
    status, headers, payload = post_raw(gw, body, cust.key)
    assert status == 400
    assert headers["X-Request-Id"].startswith("gen-")
    err = assert_openai_error(payload)
    assert err["type"] == "invalid_request_error"
    if param:
        assert err["param"] == param
    assert_nothing_charged(gw, cust.email)


def test_authentication_errors(setup):
    gw, cust, _ = setup
    body = json.dumps({"model": MODEL, "messages": MSG}).encode()
    status, headers, payload = post_raw(gw, body, None)
    assert status == 401 and assert_openai_error(payload, "missing_api_key")
    assert headers["X-Request-Id"].startswith("gen-")
    status, _, payload = post_raw(gw, body, "th-" + "x" * 43)
    assert status == 401 and assert_openai_error(payload, "invalid_api_key")
    status, _, payload = post_raw(gw, body, None, {"Authorization": "Basic Zm9vOmJhcg=="})
    assert status == 401

    with pytest.raises(openai.AuthenticationError):
        gw.client("sk-not-ours").chat.completions.create(model=MODEL, messages=MSG)

    key_id = gw.read(lambda c: accounts.list_keys(c, cust.email))[0]["id"]
    gw.write(lambda c: accounts.revoke_key(c, key_id))
    with pytest.raises(openai.AuthenticationError):
        gw.client(cust.key).chat.completions.create(model=MODEL, messages=MSG)
    assert_nothing_charged(gw, cust.email)


def test_expired_key_is_refused(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway, expires="2099-01-01")
    from sqlalchemy import update

    from tokenhub.storage.engine import utc_now
    from tokenhub.storage.tables import api_keys

    gateway.write(lambda c: _expire_all(c, update, api_keys, utc_now))
    with pytest.raises(openai.AuthenticationError) as exc:
        gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG)
    assert exc.value.code == "expired_api_key"


async def _expire_all(conn, update, api_keys, utc_now):
    from tokenhub.storage.engine import bump_config_version

    await conn.execute(update(api_keys).values(expires_at=utc_now()))
    await bump_config_version(conn)


def test_insufficient_credits_is_402_before_any_upstream_call(gateway: Harness, upstream_url: str, fake_openai: FakeOpenAIState):
    priced_model(gateway, upstream_url)
    cust = customer(gateway, credits_usd="0.0001")
    with pytest.raises(openai.APIStatusError) as exc:
        gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG, max_tokens=1000)
    assert exc.value.status_code == 402
    assert exc.value.code == "insufficient_credits"
    assert "0.0001" in exc.value.message
    assert fake_openai.requests == []
    assert_nothing_charged(gateway, cust.email, balance=100_000)


def test_key_spending_limit_is_402(gateway: Harness, upstream_url: str, fake_openai: FakeOpenAIState):
    priced_model(gateway, upstream_url)
    cust = customer(gateway, limit_nanos=1_000_000)  # $0.001
    with pytest.raises(openai.APIStatusError) as exc:
        gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG, max_tokens=1000)  # may cost $0.015+
    assert exc.value.status_code == 402 and exc.value.code == "key_limit_reached"
    assert fake_openai.requests == []
    ok = gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG, max_tokens=10)
    assert ok.choices[0].message.content


def test_model_not_allowed_for_key_is_403(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway, models="openai/*")
    with pytest.raises(openai.PermissionDeniedError) as exc:
        gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG)
    assert exc.value.code == "model_not_allowed"
    assert_nothing_charged(gateway, cust.email)


def test_unknown_model_is_404_with_suggestions(setup):
    gw, cust, client = setup
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="openai/gpt-4.2", messages=MSG)
    assert exc.value.code == "model_not_found"
    assert "openai/gpt-4.1" in exc.value.message
    gw.write(lambda c: catalog_service.set_model(c, MODEL, enabled=False))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=MODEL, messages=MSG)
    assert_nothing_charged(gw, cust.email)


def test_body_too_large_is_413(make_gateway, sqlite_url: str, upstream_url: str):
    gw = make_gateway(sqlite_url, max_body_bytes=10_000)
    priced_model(gw, upstream_url)
    cust = customer(gw)
    big = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 20_000}]}).encode()
    status, _, payload = post_raw(gw, big, cust.key)
    assert status == 413
    assert_openai_error(payload, "payload_too_large")
    assert_nothing_charged(gw, cust.email)


@pytest.mark.parametrize(
    ("directive", "exc_type", "status", "code"),
    [
        ("status=429", openai.RateLimitError, 429, "upstream_rate_limited"),
        ("status=500", openai.InternalServerError, 502, "upstream_error"),
        ("status=502", openai.InternalServerError, 502, "upstream_error"),
        ("status=503", openai.InternalServerError, 503, "upstream_overloaded"),
        ("status=529", openai.InternalServerError, 503, "upstream_overloaded"),
        ("status=400", openai.BadRequestError, 400, "upstream_bad_request"),
        ("status=404", openai.InternalServerError, 502, "upstream_model_not_found"),
        ("status=401", openai.InternalServerError, 502, "upstream_auth_failed"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_are_mapped_and_not_charged(setup, directive, exc_type, status, code, stream):
    gw, cust, client = setup
    with pytest.raises(exc_type) as exc:
        result = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"#fake:{directive}"}], stream=stream)
        if stream:
            list(result)
    assert exc.value.status_code == status
    assert exc.value.code == code
    assert "sk-upstream" not in exc.value.message and "127.0.0.1" not in exc.value.message
    assert exc.value.response.headers.get("x-request-id", "").startswith("gen-")
    if status == 429:
        assert exc.value.response.headers.get("retry-after")
    assert_nothing_charged(gw, cust.email)


def test_upstream_timeout_is_504(make_gateway, sqlite_url: str, upstream_url: str):
    gw = make_gateway(sqlite_url, read_timeout=0.3)
    priced_model(gw, upstream_url)
    cust = customer(gw)
    with pytest.raises(openai.APIStatusError) as exc:
        gw.client(cust.key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:hang"}])
    assert exc.value.status_code == 504
    assert_nothing_charged(gw, cust.email)


def test_unreachable_upstream_is_502(gateway: Harness, upstream_url: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    priced_model(gateway, f"http://127.0.0.1:{dead_port}/v1")
    cust = customer(gateway)
    with pytest.raises(openai.InternalServerError) as exc:
        gateway.client(cust.key).chat.completions.create(model=MODEL, messages=MSG)
    assert exc.value.status_code == 502 and exc.value.code == "upstream_unreachable"
    assert str(dead_port) not in exc.value.message
    assert_nothing_charged(gateway, cust.email)


def test_no_channel_and_unserved_protocol_are_503(gateway: Harness, upstream_url: str):
    cust = customer(gateway)
    client = gateway.client(cust.key)
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="openai/gpt-4.1", messages=MSG)
    assert exc.value.status_code == 503 and exc.value.code == "no_channel"
    gateway.channel("ark", upstream_url, name="ark-misused", models=["openai/gpt-4.1"])  # a media protocol cannot chat
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model="openai/gpt-4.1", messages=MSG)
    assert exc.value.status_code == 503 and exc.value.code == "protocol_not_served"
    assert_nothing_charged(gateway, cust.email)


def test_unknown_route_and_method_use_the_error_format(gateway: Harness):
    req = urllib.request.Request(f"{gateway.base_url}/nope")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 404
    assert exc.value.headers["X-Request-Id"].startswith("gen-")  # every answer names its request, a router's too
    assert_openai_error(json.loads(exc.value.read()), "route_not_found")
