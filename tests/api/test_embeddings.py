"""POST /api/v1/embeddings through the openai SDK: OpenAI, Qwen (OpenAI-compatible) and Gemini upstreams."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.billing.cost import usage_cost
from tokenhub.money import format_usd
from tokenhub.simulator.gemini import FakeGeminiState
from tokenhub.simulator.openai import FakeOpenAIState
from tokenhub.simulator.openai.embeddings import vector
from tokenhub.tokens import Usage


@pytest.fixture
def env(gateway: Harness, upstream_url: str, gemini_url: str):
    gateway.channel("openai", upstream_url, name="oa")
    gateway.channel("qwen", upstream_url, name="qw")
    gateway.channel("gemini", gemini_url, name="gm")
    cust = customer(gateway, credits_usd="5")
    return gateway, cust, gateway.client(cust.key)


def charged(gw: Harness, raw) -> int:
    gw.flush()
    row = gw.request_row(raw.headers["x-request-id"])
    assert row.state == "settled" and row.endpoint == "embeddings"
    return row.cost_nanos


def test_one_string_with_the_sdks_default_base64(env):
    """The SDK asks for base64 unless told otherwise and decodes it: the vectors are the upstream's floats."""
    gw, _, client = env
    raw = client.embeddings.with_raw_response.create(model="openai/text-embedding-3-small", input="the quick brown fox")
    result = raw.parse()
    assert result.model == "openai/text-embedding-3-small" and len(result.data) == 1
    expected = vector("the quick brown fox", 1536)
    assert [round(x, 5) for x in result.data[0].embedding] == [round(x, 5) for x in expected]  # float32 on the wire
    assert result.usage.prompt_tokens == 4
    cost = charged(gw, raw)
    model = gw.gw.directory.catalog.get("openai/text-embedding-3-small")
    assert cost == usage_cost(Usage(4, 0), model.pricing) > 0
    assert Decimal(str(result.usage.model_extra["cost"])) == Decimal(format_usd(cost))
    assert gw.ledger_report().ok


def test_lists_token_arrays_dimensions_and_floats(env, fake_openai: FakeOpenAIState):
    _, _, client = env
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    result = client.embeddings.create(model="openai/text-embedding-3-large", input=texts, dimensions=256, encoding_format="float")
    assert [d.index for d in result.data] == [0, 1, 2] and all(len(d.embedding) == 256 for d in result.data)
    assert result.data[2].embedding == pytest.approx(vector(texts[2], 256))
    assert fake_openai.requests[-1].json["dimensions"] == 256
    tokens = client.embeddings.create(model="openai/text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 5
    one = client.embeddings.create(model="openai/text-embedding-3-small", input=[7, 8, 9, 10])  # one token array
    assert len(one.data) == 1 and one.usage.prompt_tokens == 4


def test_qwen_inputs_go_in_batches_and_come_back_in_order(env, fake_openai: FakeOpenAIState):
    gw, _, client = env
    texts = [f"document number {i}" for i in range(25)]
    before = len(fake_openai.requests)
    raw = client.embeddings.with_raw_response.create(model="qwen/text-embedding-v4", input=texts, dimensions=512)
    result = raw.parse()
    batches = [r.json["input"] for r in fake_openai.requests[before:]]
    assert sorted(len(b) for b in batches) == [5, 10, 10]  # Model Studio takes 10 inputs per request
    for data, text in zip(result.data, texts, strict=True):  # in input order across the batches
        assert data.embedding == pytest.approx(vector(text, 512), abs=1e-6)
    assert result.usage.prompt_tokens == 75
    assert charged(gw, raw) == usage_cost(Usage(75, 0), gw.gw.directory.catalog.get("qwen/text-embedding-v4").pricing)


def test_gemini_embeddings_are_estimated(env, fake_gemini: FakeGeminiState):
    gw, _, client = env
    raw = client.embeddings.with_raw_response.create(model="google/gemini-embedding-001", input=["hello world", "bonjour"],
                                                     dimensions=768, encoding_format="float")  # fmt: skip
    result = raw.parse()
    assert len(result.data) == 2 and len(result.data[0].embedding) == 768
    sent = fake_gemini.requests[-1]
    assert sent.path.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert [r["outputDimensionality"] for r in sent.json["requests"]] == [768, 768]
    assert result.usage.model_extra["estimated"] is True and result.usage.prompt_tokens > 0
    assert charged(gw, raw) > 0


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "openai/text-embedding-3-small", "input": ""}, "input"),
    ({"model": "openai/text-embedding-3-small", "input": []}, "input"),
    ({"model": "openai/text-embedding-3-small", "input": [["a"]]}, "input"),
    ({"model": "openai/text-embedding-3-small", "input": "x", "dimensions": 5000}, "dimensions"),
    ({"model": "qwen/text-embedding-v4", "input": "x", "dimensions": 100}, "dimensions"),
    ({"model": "google/gemini-embedding-001", "input": [[1, 2]]}, "input"),
    ({"model": "openai/text-embedding-3-small", "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "openai/gpt-4.1", "input": "x"}, "model"),
    ({"input": "x"}, "model"),
])  # fmt: skip
def test_bad_input_is_a_400_in_openais_format(env, body, param):
    gw, cust, client = env
    with pytest.raises(openai.BadRequestError) as exc:
        client.post("/embeddings", body=body, cast_to=object)
    assert exc.value.body["param"] == param and exc.value.body["type"] == "invalid_request_error"
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0


def test_an_embedding_model_on_chat_says_where_to_go(env):
    _, _, client = env
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="openai/text-embedding-3-small", messages=[{"role": "user", "content": "hi"}])
    assert "/api/v1/embeddings" in exc.value.message


def test_upstream_failure_charges_nothing_and_no_credit_is_refused(env, gateway: Harness):
    gw, cust, client = env
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="openai/text-embedding-3-small", input="#fake:status=500 hello")
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0
    poor = customer(gw, "poor@example.com", credits_usd=None)
    with pytest.raises(openai.APIStatusError) as exc:
        gw.client(poor.key).embeddings.create(model="openai/text-embedding-3-small", input="hello")
    assert exc.value.status_code == 402
    assert gw.ledger_report().ok
