"""Legacy POST /api/v1/completions through the openai SDK: passed through to OpenAI-protocol channels, billed like chat."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.money import format_usd
from tokenhub.simulator.openai import FakeOpenAIState

MODEL = "openai/gpt-3.5-turbo-instruct"


@pytest.fixture
def env(gateway: Harness, upstream_url: str, anthropic_url: str):
    gateway.channel("openai", upstream_url, name="oa")
    gateway.channel("anthropic", anthropic_url, name="claude")
    cust = customer(gateway, credits_usd="5")
    return gateway, cust, gateway.client(cust.key)


def test_complete_and_bill(env, fake_openai: FakeOpenAIState):
    gw, _, client = env
    raw = client.completions.with_raw_response.create(model=MODEL, prompt="Say hello #fake:tokens=5", max_tokens=50)
    reply = raw.parse()
    assert reply.object == "text_completion" and reply.model == MODEL
    assert len(reply.choices[0].text.split()) == 5 and reply.choices[0].finish_reason == "stop"
    sent = fake_openai.requests[-1]
    assert sent.path.endswith("/completions") and sent.json["model"] == "gpt-3.5-turbo-instruct" and sent.json["max_tokens"] == 50
    gw.flush()
    row = gw.request_row(raw.headers["x-request-id"])
    assert row.endpoint == "completions" and row.cost_nanos > 0
    assert Decimal(str(reply.usage.model_extra["cost"])) == Decimal(format_usd(row.cost_nanos))
    assert gw.ledger_report().ok


def test_stream_with_usage(env, fake_openai: FakeOpenAIState):
    gw, _, client = env
    chunks = list(client.completions.create(model=MODEL, prompt="hi #fake:tokens=4", stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices).split() and all(c.model == MODEL for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.model_extra["cost"] > 0
    default = client.completions.create(model=MODEL, prompt="hi")
    assert fake_openai.requests[-1].json["max_tokens"] == 16 and default.choices[0].text  # OpenAI's default bound
    gw.flush()
    assert gw.ledger_report().ok


def test_models_without_the_endpoint_are_refused(env):
    _, _, client = env
    for model in ("openai/gpt-4.1", "anthropic/claude-sonnet-4-6"):
        with pytest.raises(openai.BadRequestError) as exc:
            client.completions.create(model=model, prompt="hi")
        assert "/chat/completions" in exc.value.message and exc.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as exc:
        client.completions.create(model=MODEL, prompt=[])
    assert exc.value.body["param"] == "prompt"
