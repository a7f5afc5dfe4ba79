"""Malformed requests get a clear 4xx in the API's own format from every adapter — never a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.conformance.upstreams import UPSTREAMS, ProviderCase
from tests.support.harness import Harness
from tests.support.scenarios import customer

HI = {"role": "user", "content": "hi"}
BAD_CHAT_FIELDS = [
    {"messages": [{"role": "user", "content": 42}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "not-an-object"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]},
    {"messages": [{"role": "user", "content": [{"type": "nonsense"}]}]},
    {"messages": [{"role": "wizard", "content": "hi"}]},
    {"messages": [HI, {"role": "assistant", "tool_calls": "nope"}]},
    {"messages": [HI, {"role": "assistant", "tool_calls": [{"id": 5, "function": {"name": None, "arguments": 7}}]}]},
    {"messages": [HI, {"role": "tool", "content": "orphan result"}]},
    {"messages": [HI], "tools": "get_weather"},
    {"messages": [HI], "tools": [{"type": "function"}]},
    {"messages": [HI], "tools": [{"type": "function", "function": {"name": "f", "parameters": "schema?"}}]},
    {"messages": [HI], "tool_choice": {"type": "function"}},
    {"messages": [HI], "response_format": {"type": "json_schema"}},
    {"messages": [HI], "response_format": "json"},
    {"messages": [HI], "stop": 5},
    {"messages": [HI], "temperature": "hot"},
    {"messages": [HI], "reasoning_effort": 9},
    {"messages": [HI], "stream_options": {"include_usage": "yes"}, "stream": True},
    {"messages": [{"role": "system", "content": [{"type": "text"}]}, HI]},
]
BAD_MESSAGES_BODIES = [
    [],
    {"max_tokens": 10, "messages": [HI]},
    {"model": "MODEL", "max_tokens": "ten", "messages": [HI]},
    {"model": "MODEL", "max_tokens": 10, "messages": "hi"},
    {"model": "MODEL", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]},
    {"model": "MODEL", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
    {"model": "MODEL", "max_tokens": 10, "messages": [HI], "tools": [{"name": "x"}]},
    {"model": "MODEL", "max_tokens": 10, "messages": [HI], "thinking": {"type": "enabled", "budget_tokens": "lots"}},
    {"model": "MODEL", "max_tokens": 10, "messages": [HI], "system": 12},
]


def post(gw: Harness, path: str, body: object, key: str) -> tuple[int, dict]:
    req = urllib.request.Request(f"{gw.base_url}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                                          "anthropic-version": "2023-06-01"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {}  # accepted (possibly a stream): no error to check
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(params=UPSTREAMS, ids=lambda p: p.name)
def env(request: pytest.FixtureRequest, gateway: Harness):
    case: ProviderCase = request.param
    gateway.channel(case.provider, request.getfixturevalue(case.url_fixture), name=f"c-{case.name}")
    return case, gateway, customer(gateway)


def test_chat_completions_refuses_bad_fields_cleanly(env):
    case, gw, cust = env
    for fields in BAD_CHAT_FIELDS:
        status, body = post(gw, "/chat/completions", {"model": case.model, **fields}, cust.key)
        assert 400 <= status < 500 or status == 200, (fields, status, body)  # an upstream may accept odd input
        if status != 200:
            assert set(body["error"]) == {"message", "type", "code", "param"}, body
    gw.flush()
    assert gw.credits(cust.email)["held_nanos"] == 0 and gw.ledger_report().ok


def test_messages_refuses_bad_bodies_cleanly(env):
    case, gw, cust = env
    for raw in BAD_MESSAGES_BODIES:
        body = json.loads(json.dumps(raw).replace("MODEL", case.model))
        status, answer = post(gw, "/messages", body, cust.key)
        assert 400 <= status < 500, (body, status, answer)
        assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error", answer
    gw.flush()
    assert gw.credits(cust.email)["held_nanos"] == 0
