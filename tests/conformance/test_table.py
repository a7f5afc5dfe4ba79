"""Every client protocol against every upstream protocol, from one table: CLIENTS x UPSTREAMS.

Each case is written once, in the table's words (``clients.Ask`` in, ``clients.Answer`` back); a
driver turns them into its protocol through the official SDK and checks what only its protocol
promises. A case skips where the upstream adapter does not declare the capability it needs.

To add a client protocol: a driver class in clients.py (``ask``, ``tool_results``, ``check_error``, ``cannot``,
``name``, ``error``) and its name in ``CLIENTS``. To add an upstream protocol: a ``ProviderCase`` in
upstreams.py (its fake's fixtures, how it spells each scenario, where features land in its request)
and its adapter's ``capabilities``.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.conformance.clients import CLIENTS, PNG, Ask
from tests.conformance.upstreams import UPSTREAMS, ProviderCase
from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.billing.cost import usage_cost
from tokenhub.money import format_usd
from tokenhub.tokens import Usage

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": False}
TABLE = [(client, upstream) for client in CLIENTS for upstream in UPSTREAMS]


@pytest.fixture(params=TABLE, ids=lambda pair: f"{pair[0].name}-x-{pair[1].name}")
def env(request: pytest.FixtureRequest, gateway: Harness):
    client_class, case = request.param
    case: ProviderCase
    url = request.getfixturevalue(case.url_fixture)
    state = request.getfixturevalue(case.state_fixture)
    gateway.channel(case.provider, url + ("/v1" if case.name in ("openai", "responses") and not url.endswith("/v1") else ""),
                    name=f"c-{case.name}")  # fmt: skip
    cust = customer(gateway, credits_usd="50")
    client = client_class(gateway, cust.key)
    client.model = case.model
    yield case, gateway, cust, client, state
    client.close()


def test_plain_text(env):
    case, gw, cust, client, _ = env
    answer = client.ask(Ask("hello"))
    assert answer.text == "Hello! This is a fake reply." and answer.finish == "stop"


def test_system_prompt_and_multi_turn(env):
    case, gw, cust, client, state = env
    assert client.ask(Ask("and again", system="You are terse.", history=[("user", "hi"), ("assistant", "Hello.")])).text
    sent = json.dumps(state.requests[-1].json)
    assert "You are terse." in sent and "Hello." in sent and "and again" in sent


def test_image_input(env):
    case, gw, cust, client, state = env
    case.requires("vision")
    assert client.ask(Ask("what is it?", history=[("user", "hi"), ("assistant", "Hello.")], image=PNG)).text
    sent = json.dumps(state.requests[-1].json)
    assert (PNG in sent or PNG.replace("+", "-").replace("/", "_") in sent) and "Hello." in sent  # Google's SDK sends URL-safe


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tools_and_result_round_trip(env, stream: bool):
    case, gw, cust, client, _ = env
    case.requires("tools")
    if stream:
        case.requires("stream")
    ask = Ask("weather in Paris and Rome? " + case.say("tools"), tools=True, stream=stream)
    first = client.ask(ask)
    assert first.finish == "tool_calls"
    assert [c.name for c in first.calls] == ["get_weather", "get_weather"]
    assert [c.arguments for c in first.calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert len({c.id for c in first.calls}) == 2
    assert client.tool_results(ask, first, '{"temp_c": 18}').text


def test_reasoning(env):
    case, gw, cust, client, _ = env
    case.requires("reasoning")
    answer = client.ask(Ask("think " + case.say("reasoning"), reasoning=True, max_tokens=4000))
    assert answer.text and answer.completion_tokens >= 5


def test_json_schema_output(env):
    case, gw, cust, client, state = env
    case.requires("json_schema")
    client.ask(Ask("answer as JSON", schema=SCHEMA))
    assert case.json_schema_sent(state.requests[-1].json) == SCHEMA


def test_stop_sequences_and_length(env):
    case, gw, cust, client, state = env
    if "stop" not in getattr(client, "cannot", ()) and case.stop:  # Responses has no stop sequences: only length
        client.ask(Ask("count", stop=["END", "STOP"]))
        assert case.stop_sent(state.requests[-1].json) == ["END", "STOP"]
    elif "stop" not in getattr(client, "cannot", ()):  # the client asks, the upstream cannot: a clear 400, not a silent drop
        with pytest.raises(client.error) as exc:
            client.ask(Ask("count", stop=["END", "STOP"]))
        assert (getattr(exc.value, "status_code", None) or exc.value.code) == 400
    assert client.ask(Ask(case.say("cut"))).finish == "length"


@pytest.mark.parametrize(("code", "status"), [(429, 429), (500, 502), (503, 503)])
def test_upstream_errors(env, code: int, status: int):
    case, gw, cust, client, _ = env
    with pytest.raises(client.error) as exc:
        client.ask(Ask(f"#fake:status={code}", max_tokens=50))
    assert (getattr(exc.value, "status_code", None) or exc.value.code) == status  # google-genai names it code
    client.check_error(exc.value)
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_usage_and_cost(env, stream: bool):
    case, gw, cust, client, _ = env
    if stream:
        case.requires("stream")
    model = gw.gw.directory.catalog.get(case.model)
    answer = client.ask(Ask("a b c d e f " + case.say("cached"), stream=stream, max_tokens=200))
    assert answer.cached_tokens == 3
    usage = Usage(answer.prompt_tokens, answer.completion_tokens, cached_tokens=3, cache_write_tokens=answer.cache_write_tokens,
                  reasoning_tokens=answer.reasoning_tokens)  # fmt: skip
    gw.flush()
    charged = gw.credits(cust.email)["total_usage_nanos"]
    assert charged == usage_cost(usage, model.pricing) > 0  # what the reported usage costs at the catalog's prices
    if answer.cost is not None or client.name != "gemini-native":  # Google's SDK drops usageMetadata.cost
        assert answer.cost == Decimal(format_usd(charged))  # and the answer says so, in every client protocol
    assert gw.ledger_report().ok
