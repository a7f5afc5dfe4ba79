"""Google's Gemini API under /api, through the google-genai SDK: every catalog chat model, translated for the relay.

The SDK's base URL is the gateway's ``/api``; it adds ``/v1beta/models/{model}:generateContent`` itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
from google import genai
from google.genai import errors, types

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tokenhub.money import format_usd
from tokenhub.simulator.openai import FakeOpenAIState

MODELS = ["gemini-2.5-pro", "google/gemini-2.5-pro", "openai/gpt-4.1", "anthropic/claude-sonnet-4-6"]
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Weather by city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})])  # fmt: skip


@pytest.fixture
def env(gateway: Harness, upstream_url: str, anthropic_url: str, gemini_url: str):
    gateway.channel("openai", upstream_url, name="oa")
    gateway.channel("anthropic", anthropic_url, name="claude")
    gateway.channel("gemini", gemini_url, name="gm")
    cust = customer(gateway, credits_usd="20")
    base = gateway.base_url.removesuffix("/v1")
    client = genai.Client(api_key=cust.key, http_options=types.HttpOptions(base_url=base))
    return gateway, cust, client


@pytest.mark.parametrize("model", MODELS)
def test_generate_content(env, model):
    gw, cust, client = env
    reply = client.models.generate_content(model=model, contents="hello",
                                           config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=200))  # fmt: skip
    assert reply.text == "Hello! This is a fake reply."
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.prompt_token_count > 0 and reply.usage_metadata.total_token_count > 0
    gw.flush()
    row = gw.request_row()
    assert row.endpoint == "gemini" and row.state == "settled" and row.cost_nanos > 0
    assert gw.ledger_report().ok


@pytest.mark.parametrize("model", MODELS)
def test_stream(env, model):
    _, _, client = env
    chunks = list(client.models.generate_content_stream(model=model, contents="hello #fake:tokens=6"))
    text = "".join(c.text or "" for c in chunks)
    assert len(text.split()) == 6
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP and chunks[-1].usage_metadata.total_token_count


@pytest.mark.parametrize("model", ["gemini-2.5-pro", "openai/gpt-4.1", "anthropic/claude-sonnet-4-6"])
def test_function_call_round_trip(env, model):
    _, _, client = env
    config = types.GenerateContentConfig(tools=[WEATHER], max_output_tokens=300)
    question = types.Content(role="user", parts=[types.Part(text="weather in Paris? #fake:tools")])
    first = client.models.generate_content(model=model, contents=[question], config=config)
    calls = first.function_calls
    assert calls and calls[0].name == "get_weather" and calls[0].args.get("city")
    answers = [types.Part.from_function_response(name=c.name, response={"sky": "clear"}) for c in calls]
    follow = client.models.generate_content(
        model=model, config=config,
        contents=[question, first.candidates[0].content, types.Content(role="user", parts=answers)],
    )  # fmt: skip
    assert follow.text


def test_count_tokens_models_and_keys(env, gateway: Harness):
    gw, cust, client = env
    assert client.models.count_tokens(model="gemini-2.5-pro", contents="hello there").total_tokens > 0
    names = [m.name for m in client.models.list()]
    assert "models/gemini-2.5-pro" in names and "models/openai/gpt-4.1" in names and "models/gemini-embedding-001" in names
    assert client.models.get(model="gemini-2.5-pro").display_name
    # ?key= works as Google's does, on /v1 too
    url = f"{gw.base_url}/models/openai/gpt-4.1:generateContent?key={cust.key}"
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})) as resp:
        answer = json.load(resp)
    assert answer["candidates"][0]["content"]["parts"][0]["text"] and answer["usageMetadata"]["cost"] > 0
    listing = urllib.request.urlopen(urllib.request.Request(f"{gw.base_url}/models", headers={"x-goog-api-key": cust.key}))
    assert "models" in json.load(listing)  # Google's list under /api/v1 for a Google-keyed request


def test_structured_output_reaches_the_upstream(env, fake_openai: FakeOpenAIState):
    _, _, client = env
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    client.models.generate_content(model="openai/gpt-4.1", contents="a city",
                                   config=types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema))  # fmt: skip
    assert fake_openai.requests[-1].json["response_format"]["json_schema"]["schema"] == schema


def test_embed_content(env):
    gw, _, client = env
    one = client.models.embed_content(model="gemini-embedding-001", contents="hello world",
                                      config=types.EmbedContentConfig(output_dimensionality=256))  # fmt: skip
    assert len(one.embeddings) == 1 and len(one.embeddings[0].values) == 256
    many = client.models.embed_content(model="openai/text-embedding-3-small", contents=["a", "b", "c"])
    assert len(many.embeddings) == 3 and len(many.embeddings[0].values) == 1536
    gw.flush()
    assert gw.request_row().endpoint == "embeddings" and gw.ledger_report().ok


def test_errors_are_in_googles_format(env, gateway: Harness):
    gw, cust, client = env
    bad = genai.Client(api_key="th-wrong", http_options=types.HttpOptions(base_url=gw.base_url.removesuffix("/v1")))
    with pytest.raises(errors.ClientError) as exc:
        bad.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert exc.value.code == 401 and exc.value.status == "UNAUTHENTICATED"
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="no-such-model", contents="hi")
    assert exc.value.code == 404 and exc.value.status == "NOT_FOUND"
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="gemini-2.5-pro", contents="hi",
                                       config=types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]))  # fmt: skip
    assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"
    with pytest.raises(errors.ServerError) as server:
        client.models.generate_content(model="openai/gpt-4.1", contents="#fake:status=500 hi")
    assert server.value.code == 502
    url = f"{gw.base_url.removesuffix('/v1')}/v1beta/models/gemini-2.5-pro:generateContent"
    request = urllib.request.Request(url, data=b"{not json", headers={"x-goog-api-key": cust.key, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(request)
    assert http.value.code == 400 and json.load(http.value)["error"]["status"] == "INVALID_ARGUMENT"
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_channels_take_the_clients_own_body(env, fake_gemini, stream):
    """Pass-through: the body as it came (safetySettings, thinking config, camelCase) at the Gemini channel, only
    the model (in the URL), the key and the held maxOutputTokens ours; the answer as Google sent it, plus the cost."""
    gw, cust, _ = env
    body = {"contents": [{"role": "user", "parts": [{"text": "hello #fake:tokens=4"}]}],
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": 512}}}  # fmt: skip
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    url = f"{gw.base_url.removesuffix('/v1')}/v1beta/models/google/gemini-2.5-pro:{method}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"x-goog-api-key": cust.key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as resp:
        raw = resp.read().decode()
        request_id = resp.headers["x-request-id"]
    sent = fake_gemini.requests[-1]
    assert sent.path.endswith("/models/gemini-2.5-pro:" + method.split("?")[0])
    assert sent.json["safetySettings"] == body["safetySettings"] and sent.json["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 512}
    assert sent.json["generationConfig"]["maxOutputTokens"] == 100 and sent.headers["x-goog-api-key"] == "sk-upstream"
    chunks = [json.loads(line[len("data: "):]) for line in raw.splitlines() if line.startswith("data: ")] if stream else [json.loads(raw)]
    assert "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]).split()
    gw.flush()
    row = gw.request_row(request_id)
    assert row.cost_nanos > 0 and Decimal(str(chunks[-1]["usageMetadata"]["cost"])) == Decimal(format_usd(row.cost_nanos))
    assert gw.ledger_report().ok
