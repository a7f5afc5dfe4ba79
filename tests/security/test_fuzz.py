"""Fuzzing the public and admin routes: whatever the bodies, headers and query strings, never a 500
and never a stack trace.

One gateway on loopback with the simulator's fakes as its upstreams (OpenAI, Anthropic, Gemini, the
media fakes); hypothesis draws requests around each route's real shape (so they get past the first
check) and around nothing at all. Kept to 150 examples per test, no deadline: CI time stays modest
(TOKENHUB_FUZZ_EXAMPLES=5000 for a longer hunt).
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import KLING_AK, KLING_SK, UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.scenarios import customer

MODELS = [
    "openai/gpt-4.1",
    "claude-sonnet-4-6",
    "google/gemini-2.5-pro",
    "deepseek/deepseek-v4-pro",
    "bytedance/doubao-seedream-5.0",
    "bytedance/doubao-seedance-2.0",
]
# 5xx the gateway may answer on purpose (an upstream's failure, no channel): never the 500 of a bug.
UPSTREAM_STATUSES = {502, 503, 504}

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=16,
)
FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "tools",
    "tool_choice",
    "system",
    "thinking",
    "metadata",
    "temperature",
    "prompt",
    "duration",
    "resolution",
    "callback_url",
    "size",
    "response_format",
    "image",
    "email",
    "password",
    "is_admin",
    "disabled",
    "amount",
    "note",
    "provider",
    "api_key",
    "base_url",
    "name",
    "models",
    "priority",
    "weight",
    "rpm",
    "tpm",
    "concurrency",
    "daily_limit",
    "limit",
    "expires_at",
    "id",
    "upstream_id",
    "input_price",
    "output_price",
    "enabled",
    "content",
    "role",
    "api_base",
    "user_config",
]
content = st.text(max_size=40) | st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "image", "tool_result", "x"]), "text": st.text(max_size=20)},
        optional={"image_url": json_values, "source": json_values},
    ),
    max_size=3,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "x"]), "content": content},
    optional={"tool_calls": json_values, "tool_call_id": json_values, "name": json_values},
)
base = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS) | st.text(max_size=20)},
    optional={
        "messages": st.lists(message, min_size=1, max_size=3) | json_values,
        "max_tokens": st.integers(1, 50) | json_values,
        "prompt": st.text(max_size=30),
        "stream": st.booleans() | json_values,
    },
)
bodies = st.one_of(
    st.builds(lambda b, extra: {**b, **extra}, base, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4)),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
path_parts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12) | st.sampled_from(
    ["1", "²", "9" * 25, "..", "%00"]
)
query = st.dictionaries(
    st.sampled_from(["days", "limit", "before", "id", "q", "beta", "kind", "x"]), st.text(max_size=12), max_size=3
)
header_values = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(min_size=1, max_size=20).map(lambda b: bytes(x | 0x80 for x in b)),  # not UTF-8 at all
).filter(lambda b: b"\r" not in b and b"\n" not in b and b"\x00" not in b)
extra_headers = st.dictionaries(
    st.sampled_from(
        [
            "anthropic-version",
            "anthropic-beta",
            "Content-Type",
            "Content-Encoding",
            "Accept",
            "X-Forwarded-For",
            "Origin",
            "Cookie",
        ]
    ),
    header_values,
    max_size=3,
)

PUBLIC = [
    ("GET", "/api/v1/models"),
    ("POST", "/api/v1/chat/completions"),
    ("GET", "/api/v1/credits"),
    ("GET", "/api/v1/key"),
    ("GET", "/api/v1/generation"),
    ("POST", "/api/v1/images/generations"),
    ("POST", "/api/v1/videos/generations"),
    ("GET", "/api/v1/videos/generations"),
    ("GET", "/api/v1/videos/generations/{p}"),
    ("POST", "/api/v1/messages"),
    ("POST", "/api/v1/messages/count_tokens"),
    ("POST", "/api/stripe/webhook"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]
ADMIN = [
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users"),
    ("GET", "/api/admin/users/{p}"),
    ("PATCH", "/api/admin/users/{p}"),
    ("GET", "/api/admin/users/{p}/keys"),
    ("POST", "/api/admin/users/{p}/keys"),
    ("DELETE", "/api/admin/keys/{p}"),
    ("PATCH", "/api/admin/keys/{p}"),
    ("GET", "/api/admin/users/{p}/limits"),
    ("PATCH", "/api/admin/users/{p}/limits"),
    ("GET", "/api/admin/users/{p}/credits"),
    ("POST", "/api/admin/users/{p}/credits"),
    ("GET", "/api/admin/channels"),
    ("POST", "/api/admin/channels"),
    ("PATCH", "/api/admin/channels/{p}"),
    ("POST", "/api/admin/channels/{p}/test"),
    ("GET", "/api/admin/stats/overview"),
    ("GET", "/api/admin/stats/channels"),
    ("GET", "/api/admin/models"),
    ("POST", "/api/admin/models"),
    ("PATCH", "/api/admin/models/{p}"),
    ("GET", "/api/admin/ledger/check"),
]


@pytest.fixture
def target(gateway: Harness, upstream_url: str, anthropic_url: str, gemini_url: str, media_servers) -> dict[str, Any]:
    gateway.channel("openai", upstream_url, api_key=UPSTREAM_KEY, name="oa")
    gateway.channel("deepseek", upstream_url, api_key=UPSTREAM_KEY, name="ds")
    gateway.channel("anthropic", anthropic_url, api_key=UPSTREAM_KEY, name="claude")
    gateway.channel("gemini", gemini_url, api_key=UPSTREAM_KEY, name="gm")
    gateway.channel("ark", media_servers["ark"].url + "/api/v3", api_key=UPSTREAM_KEY, name="ark")
    gateway.channel("kling", media_servers["kling"].url, api_key=f"{KLING_AK}:{KLING_SK}", name="kl")
    cust = customer(gateway, credits_usd="1000")
    gateway.user("root@example.com", None, admin=True)
    return {"gw": gateway, "keys": [cust.key, gateway.key("root@example.com")]}


def send(gw: Harness, method: str, path: str, body: Any, headers: dict[str, Any]) -> tuple[int, bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    conn = http.client.HTTPConnection("127.0.0.1", gw.server.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        sent = {"Content-Type": "application/json", **headers}
        if raw is not None:
            sent["Content-Length"] = str(len(raw))
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(raw)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check(status: int, answer: bytes, request: str) -> None:
    assert b"Traceback" not in answer and b'File "' not in answer, f"{request}: a stack trace: {answer[:500]!r}"
    if status < 500:
        return
    assert status in UPSTREAM_STATUSES, f"{request}: {status} {answer[:500]!r}"
    error = json.loads(answer).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    assert code, f"{request}: {status} without an error code (the internal error): {answer[:500]!r}"


def exercise(target: dict[str, Any], data: st.DataObject, routes: list[tuple[str, str]], key_index: int) -> None:
    gw = target["gw"]
    method, template = data.draw(st.sampled_from(routes), label="route")
    path = template.replace("{p}", urllib.parse.quote(data.draw(path_parts, label="path part"), safe=""))
    params = data.draw(query, label="query")
    if params:
        path += "?" + urllib.parse.urlencode(params)
    auth = data.draw(
        st.sampled_from(["good", "x-api-key", "garbage", "garbage bearer", "garbage x-api-key", "none"]), label="auth"
    )
    key = target["keys"][key_index]
    headers: dict[str, Any] = data.draw(extra_headers, label="headers")
    if auth == "good":
        headers["Authorization"] = f"Bearer {key}"
    elif auth == "x-api-key":
        headers["x-api-key"] = key
    elif auth == "garbage":
        headers["Authorization"] = data.draw(header_values, label="authorization")
    elif auth == "garbage bearer":
        headers["Authorization"] = (
            b"Bearer " + data.draw(st.sampled_from([b"", b"th-"]), label="prefix") + data.draw(header_values, label="token")
        )
    elif auth == "garbage x-api-key":
        headers["x-api-key"] = b"th-" + data.draw(header_values, label="x-api-key")
    body = data.draw(bodies, label="body") if method in ("POST", "PATCH") else None
    status, answer = send(gw, method, path, body, headers)
    check(status, answer, f"{method} {path}")


FUZZ = settings(
    max_examples=int(os.environ.get("TOKENHUB_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.data())
def test_public_routes_never_answer_500(target: dict[str, Any], data: st.DataObject):
    exercise(target, data, PUBLIC, 0)


@FUZZ
@given(data=st.data())
def test_admin_routes_never_answer_500(target: dict[str, Any], data: st.DataObject):
    exercise(target, data, ADMIN, 1)
