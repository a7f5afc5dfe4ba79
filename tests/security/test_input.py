"""Hostile input gets a clear 4xx in the route's own error format, never a 500; client fields that
name an upstream or a credential are never forwarded; an absurd Stripe amount is refused.

Everything through real HTTP to a gateway on loopback, with the simulator's fakes as upstreams.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.parse
from typing import Any, Callable

import pytest

from tests.conftest import UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.json_body import MAX_JSON_DEPTH
from tokenhub.simulator.anthropic import FakeAnthropicState
from tokenhub.simulator.gemini import FakeGeminiState
from tokenhub.simulator.openai import FakeOpenAIState

MSG = [{"role": "user", "content": "hi"}]
WEBHOOK_SECRET = "whsec_test_0123456789abcdef"


def request(
    gw: Harness, method: str, path: str, body: bytes | None = None, headers: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """One request with exactly the bytes given (header values may be bytes: http.client sends them as they are)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if body is not None:
            all_headers["Content-Length"] = str(len(body))
        for name, value in all_headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def openai_error(body: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body["error"]) == {"message", "type", "code", "param"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def anthropic_error(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["message"], body
    return body["error"]


@pytest.fixture
def env(gateway: Harness, upstream_url: str, anthropic_url: str, gemini_url: str):
    gateway.channel("openai", upstream_url, api_key=UPSTREAM_KEY, name="oa")
    gateway.channel("deepseek", upstream_url, api_key=UPSTREAM_KEY, name="ds")
    gateway.channel("anthropic", anthropic_url, api_key=UPSTREAM_KEY, name="claude")
    gateway.channel("gemini", gemini_url, api_key=UPSTREAM_KEY, name="gm")
    cust = customer(gateway)
    gateway.user("root@example.com", None, admin=True)
    return gateway, cust.key, gateway.key("root@example.com")


# --------------------------------------------------------------------------- keys that are not UTF-8


@pytest.mark.parametrize("header", [{"Authorization": b"Bearer th-\xff\xfe\x80"}, {"x-api-key": b"th-\xc3\x28\xff"}])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/credits"),
        ("GET", "/api/v1/key"),
        ("POST", "/api/v1/chat/completions"),
        ("POST", "/api/v1/messages"),
        ("GET", "/api/v1/videos/generations"),
        ("GET", "/api/admin/users"),
    ],
)
def test_a_key_that_is_not_utf8_is_a_401(env, header: dict[str, bytes], method: str, path: str):
    gw, _, _ = env
    status, body = request(gw, method, path, b'{"model": "openai/gpt-4.1", "messages": []}' if method == "POST" else None, header)
    assert status == 401, body
    if path == "/api/v1/messages":
        assert anthropic_error(body)["type"] == "authentication_error"
    else:
        openai_error(body, 401)


# --------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("depth", [300, 1000, 5000])
@pytest.mark.parametrize("route", ["chat", "messages", "gemini_tools", "admin"])
def test_json_nested_too_deep_is_a_400_naming_the_limit(env, route: str, depth: int):
    gw, key, admin_key = env
    if route == "chat":
        body, path, headers = (
            {"model": "openai/gpt-4.1", "messages": MSG, "metadata": {"x": nested(depth)}},
            "/api/v1/chat/completions",
            auth(key),
        )
    elif route == "messages":
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "x": nested(depth)}]}],
        }
        path, headers = "/api/v1/messages", {"x-api-key": key}
    elif route == "gemini_tools":
        tools = [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": nested(depth)}}}}
        ]
        body, path, headers = (
            {"model": "google/gemini-2.5-pro", "messages": MSG, "tools": tools},
            "/api/v1/chat/completions",
            auth(key),
        )
    else:
        body, path, headers = {"email": "x@example.com", "extra": nested(depth)}, "/api/admin/users", auth(admin_key)
    raw = json.dumps(body).encode() if depth < 900 else _deep_json(body, depth)
    status, answer = request(gw, "POST", path, raw, headers)
    assert status == 400, answer
    error = anthropic_error(answer) if route == "messages" else openai_error(answer, 400, "json_too_deep")
    assert str(MAX_JSON_DEPTH) in error["message"]


def _deep_json(body: dict[str, Any], depth: int) -> bytes:
    """``json.dumps`` recurses; build the deep part as text."""
    marker = "__DEEP__"
    text = json.dumps(_replace_nested(body, marker))
    deep = "[" * depth + '"leaf"' + "]" * depth
    return text.replace(f'"{marker}"', deep).encode()


def _replace_nested(value: Any, marker: str) -> Any:
    if isinstance(value, dict):
        return {k: _replace_nested(v, marker) for k, v in value.items()}
    if isinstance(value, list):
        if value and isinstance(value[0], (list, dict)) and _depth(value) > 50:
            return marker
        return [_replace_nested(v, marker) for v in value]
    return value


def _depth(value: Any) -> int:
    d = 0
    while isinstance(value, (list, dict)):
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        d += 1
    return d


def test_json_at_the_depth_limit_is_forwarded(env, fake_gemini: FakeGeminiState, fake_openai: FakeOpenAIState):
    gw, key, _ = env
    near = nested(MAX_JSON_DEPTH - 8)
    status, answer = request(
        gw,
        "POST",
        "/api/v1/chat/completions",
        json.dumps({"model": "openai/gpt-4.1", "messages": MSG, "metadata": {"x": near}}).encode(),
        auth(key),
    )
    assert status == 200, answer
    assert fake_openai.requests[-1].json["metadata"]["x"] == near


# --------------------------------------------------------------------------- query strings and URLs


@pytest.mark.parametrize("value", ["²", "١٢", "9" * 30, "-1", "0x10", ""])
def test_numbers_in_query_strings_are_ascii_digits_or_a_400(env, value: str):
    gw, key, admin_key = env
    q = urllib.parse.quote(value)
    status, body = request(gw, "GET", f"/api/admin/stats/overview?days={q}", None, auth(admin_key))
    assert status == 400 and openai_error(body, 400)["param"] == "days", body
    status, body = request(gw, "GET", f"/api/v1/videos/generations?limit={q}", None, auth(key))
    assert status == 400 and openai_error(body, 400)["param"] == "limit", body


@pytest.mark.parametrize("ref", ["²", "9" * 30])
def test_odd_ids_in_admin_paths_are_a_404(env, ref: str):
    gw, _, admin_key = env
    q = urllib.parse.quote(ref)
    for path in (f"/api/admin/users/{q}", f"/api/admin/users/{q}/keys", f"/api/admin/channels/{q}/test"):
        status, body = request(
            gw, "GET" if "test" not in path else "POST", path, None if "test" not in path else b"{}", auth(admin_key)
        )
        assert status == 404, (path, body)
        openai_error(body, 404)
    status, body = request(gw, "DELETE", f"/api/admin/keys/{q}", None, auth(admin_key))
    assert status in (400, 404), body
    openai_error(body, status)


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]:99999/x", "http://example.com:port/"])
def test_a_broken_callback_url_is_a_400(env, media_servers, url: str):
    gw, key, _ = env
    gw.channel("ark", media_servers["ark"].url + "/api/v3", api_key=UPSTREAM_KEY, name="ark")
    body = {"model": "bytedance/doubao-seedance-2.0", "prompt": "x", "duration": 5, "callback_url": url}
    status, answer = request(gw, "POST", "/api/v1/videos/generations", json.dumps(body).encode(), auth(key))
    assert status == 400, answer
    assert openai_error(answer, 400)["param"] == "callback_url"


def test_a_broken_channel_base_url_is_a_400(env):
    gw, _, admin_key = env
    body = {"provider": "openai", "api_key": "sk-x", "base_url": "http://[::1", "name": "broken"}
    status, answer = request(gw, "POST", "/api/admin/channels", json.dumps(body).encode(), auth(admin_key))
    assert status == 400, answer
    assert openai_error(answer, 400)["param"] == "base_url"


# --------------------------------------------------------------------------- fields that name an upstream


HOSTILE = {
    "api_base": "http://evil.example/v1",
    "base_url": "http://evil.example",
    "api_key": "sk-client",
    "user_config": {"model_list": []},
}
SCHEMA = {
    "type": "object",
    "properties": {"api_key": {"type": "string"}, "base_url": {"type": "string"}},
    "required": ["api_key"],
}


def _hostile_chat(model: str) -> dict[str, Any]:
    return {
        "model": model,
        **HOSTILE,
        "messages": [{"role": "user", "content": "hi", "api_key": "sk-in-message"}],
        "metadata": {"nested": {"api_base": "http://evil.example", "keep": "this"}},
        "tools": [{"type": "function", "function": {"name": "login", "parameters": SCHEMA}}],
    }


def _names(value: Any, under_properties: bool = False) -> set[str]:
    """Every object key in ``value``, but the names inside JSON Schema ``properties`` maps."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if not under_properties:
                found.add(k)
            found |= _names(v, k == "properties" and not under_properties)
    elif isinstance(value, list):
        for v in value:
            found |= _names(v)
    return found


def _assert_clean(sent: Any) -> None:
    assert not _names(sent) & set(HOSTILE), sent
    assert b"evil.example" not in json.dumps(sent).encode() and b"sk-client" not in json.dumps(sent).encode()
    assert b"sk-in-message" not in json.dumps(sent).encode()


def test_chat_to_openai_drops_upstream_fields_and_keeps_tool_schemas(env, fake_openai: FakeOpenAIState):
    gw, key, _ = env
    status, answer = request(
        gw, "POST", "/api/v1/chat/completions", json.dumps(_hostile_chat("openai/gpt-4.1")).encode(), auth(key)
    )
    assert status == 200, answer
    sent = fake_openai.requests[-1].json
    _assert_clean(sent)
    assert sent["metadata"] == {"nested": {"keep": "this"}}
    assert sent["tools"][0]["function"]["parameters"] == SCHEMA  # a tool's parameter names are the client's data
    assert fake_openai.requests[-1].headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "google/gemini-2.5-pro"])
def test_translated_chat_drops_upstream_fields(env, fake_anthropic: FakeAnthropicState, fake_gemini: FakeGeminiState, model: str):
    gw, key, _ = env
    body = _hostile_chat(model)
    body.pop("metadata")  # not every protocol takes it
    status, answer = request(gw, "POST", "/api/v1/chat/completions", json.dumps(body).encode(), auth(key))
    assert status == 200, answer
    fake = fake_anthropic if model.startswith("claude") else fake_gemini
    _assert_clean(fake.requests[-1].json)


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/messages/count_tokens"])
def test_messages_pass_through_to_anthropic_drops_upstream_fields(env, fake_anthropic: FakeAnthropicState, path: str):
    gw, key, _ = env
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 5,
        **HOSTILE,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "api_key": "sk-in-message"}]}],
        "tools": [{"name": "login", "description": "d", "input_schema": SCHEMA}],
    }
    status, answer = request(gw, "POST", path, json.dumps(body).encode(), {"x-api-key": key})
    assert status == 200, answer
    sent = fake_anthropic.requests[-1].json
    _assert_clean(sent)
    assert sent["tools"][0]["input_schema"] == SCHEMA


def test_messages_translated_to_openai_drops_upstream_fields(env, fake_openai: FakeOpenAIState):
    gw, key, _ = env
    body = {"model": "deepseek/deepseek-v4-pro", "max_tokens": 5, **HOSTILE, "messages": MSG}
    status, answer = request(gw, "POST", "/api/v1/messages", json.dumps(body).encode(), {"x-api-key": key})
    assert status == 200, answer
    _assert_clean(fake_openai.requests[-1].json)


# --------------------------------------------------------------------------- Stripe


def _signed(payload: bytes) -> str:
    t = int(time.time())
    return f"t={t},v1=" + hmac.new(WEBHOOK_SECRET.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()


def test_a_stripe_amount_of_ten_to_the_fifteen_cents_is_a_logged_400(
    make_gateway: Callable[..., Harness], sqlite_url: str, caplog: pytest.LogCaptureFixture
):
    gw = make_gateway(sqlite_url, stripe_webhook_secret=WEBHOOK_SECRET)
    user = gw.user("payer@example.com", None)
    session = {
        "id": "cs_huge",
        "object": "checkout.session",
        "amount_total": 10**15,
        "currency": "usd",
        "payment_status": "paid",
        "payment_intent": "pi_huge",
        "client_reference_id": str(user["id"]),
        "metadata": {"tokenhub_user_id": str(user["id"])},
    }
    payload = json.dumps(
        {"id": "evt_huge", "object": "event", "type": "checkout.session.completed", "data": {"object": session}}
    ).encode()
    with caplog.at_level(logging.WARNING, logger="tokenhub.billing.payments"):
        status, body = request(gw, "POST", "/api/stripe/webhook", payload, {"Stripe-Signature": _signed(payload)})
    assert status == 400, body
    assert openai_error(body, 400, "invalid_amount")
    assert any("cs_huge" in r.getMessage() for r in caplog.records)
    assert gw.credits("payer@example.com")["balance_nanos"] == 0
    assert gw.ledger_report().ok


@pytest.mark.parametrize("path", ["/api/v1/chat/completions", "/api/v1/messages"])
def test_a_body_over_the_size_limit_is_a_413_in_the_routes_format(
    make_gateway: Callable[..., Harness], sqlite_url: str, path: str
):
    gw = make_gateway(sqlite_url, max_body_bytes=2_000)
    body = json.dumps(
        {"model": "openai/gpt-4.1", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 5_000}]}
    ).encode()
    status, answer = request(gw, "POST", path, body, {"x-api-key": "th-whatever"})
    assert status == 413, answer
    if path == "/api/v1/messages":
        assert anthropic_error(answer)["type"] == "request_too_large"
    else:
        openai_error(answer, 413, "payload_too_large")


@pytest.mark.parametrize("path", ["/admin?days=%C2%B2", "/admin/users/%C2%B2", "/admin/channels/%C2%B2", "/billing?before=%C2%B2"])
def test_unicode_digits_in_console_numbers_are_not_a_500(gateway: Harness, path: str):
    """``"²".isdigit()`` is true but ``int("²")`` raises: the console reads numbers as ASCII digits only."""
    from tests.support.console_client import Visitor
    from tokenhub.accounts import service as accounts

    gateway.write(lambda c: accounts.create_user(c, "num-admin@example.com", password="correct horse battery", is_admin=True))
    visitor = Visitor(gateway.server.url)
    assert visitor.log_in("num-admin@example.com", "correct horse battery").status == 303
    status = visitor.get(path).status
    assert status in (200, 404), (path, status)
