"""google/* models through /chat/completions with the OpenAI SDK, against the fake Gemini API."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import openai
import pytest
from aiohttp import web

from tests.support.harness import Harness
from tests.support.scenarios import customer
from tests.support.servers import ServerThread
from tokenhub.money import format_usd, tokens_cost, usd_to_nanos
from tokenhub.simulator.gemini import FakeGeminiState

MODEL = "google/gemini-2.5-pro"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture
def setup(gateway: Harness, gemini_url: str):
    gateway.channel("gemini", gemini_url, name="gemini")
    cust = customer(gateway)
    return gateway, cust, gateway.client(cust.key)


def test_plain_and_streamed(setup, fake_gemini: FakeGeminiState):
    gw, cust, client = setup
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "Be brief."},
                                                                  {"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "Hello! This is a fake reply."
    assert reply.model == MODEL and reply.choices[0].finish_reason == "stop"
    sent = fake_gemini.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert sent.headers["x-goog-api-key"] == "sk-upstream"
    assert sent.json["systemInstruction"]["parts"][0]["text"] == "Be brief."
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}], stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! This is a fake reply."
    assert chunks[-1].usage.completion_tokens > 0
    assert fake_gemini.requests[-1].path.endswith(":streamGenerateContent") and fake_gemini.requests[-1].query.get("alt") == "sse"


def test_thoughts_are_billed_as_output(setup):
    gw, cust, client = setup
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "think #fake:thinking=7"}],
                                           reasoning_effort="low")
    usage = reply.usage
    assert usage.completion_tokens_details.reasoning_tokens == 7
    # Gemini 2.5 Pro: $1.25 input, $10 output (thoughts included) per 1M
    expected = tokens_cost([(usage.prompt_tokens, usd_to_nanos("1.25")), (usage.completion_tokens, usd_to_nanos("10"))])
    assert Decimal(str(usage.model_extra["cost"])) == Decimal(format_usd(expected))
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == expected


def test_function_calls_stop_becomes_tool_calls_and_loop_round_trips(setup, fake_gemini: FakeGeminiState):
    gw, cust, client = setup
    messages = [{"role": "user", "content": "weather? #fake:tools"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content
    turns = fake_gemini.requests[-1].json["contents"]
    assert [t["role"] for t in turns] == ["user", "model", "user"]
    assert [p["functionResponse"]["name"] for p in turns[2]["parts"]] == ["get_weather", "get_weather"]


def test_streamed_tool_calls_have_their_own_indexes(setup):
    _, _, client = setup
    with client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "#fake:tools"}], tools=TOOLS) as s:
        final = s.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    assert len(final.choices[0].message.tool_calls) == 2


def test_blocked_prompt_is_a_clear_error_and_free(setup):
    gw, cust, client = setup
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as exc:
            result = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:blocked_prompt"}], stream=stream)
            if stream:
                list(result)
        assert exc.value.code == "content_filter"
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0


def test_safety_finish_is_content_filter(setup):
    _, _, client = setup
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:safety"}])
    assert reply.choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize(("directive", "status"), [("status=429", 429), ("status=503", 503), ("status=500", 502), ("status=400", 400)])
def test_gemini_errors(setup, directive, status):
    gw, cust, client = setup
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"#fake:{directive}"}])
    assert exc.value.status_code == status


def test_a_wrong_upstream_key_is_the_operators_problem(gateway: Harness, gemini_url: str):
    gateway.channel("gemini", gemini_url, api_key="wrong-key", name="gemini-bad")
    cust = customer(gateway)
    with pytest.raises(openai.InternalServerError) as exc:
        gateway.client(cust.key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code == 502 and exc.value.code == "upstream_auth_failed"


@pytest.fixture
def image_server():
    async def png(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", png)
    server = ServerThread(app).start()
    yield server
    server.stop()


def test_image_urls_are_fetched_for_gemini(make_gateway, sqlite_url, gemini_url, image_server, fake_gemini: FakeGeminiState):
    gw = make_gateway(sqlite_url, fetch_allow_private=True)  # the test image server lives on loopback
    gw.channel("gemini", gemini_url, name="gemini")
    cust = customer(gw)
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": f"{image_server.url}/cat.png"}}]
    gw.client(cust.key).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    parts = fake_gemini.requests[-1].json["contents"][0]["parts"]
    inline = [p["inlineData"] for p in parts if "inlineData" in p]
    assert inline == [{"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}]


def test_image_urls_to_private_addresses_are_refused(setup, image_server, fake_gemini: FakeGeminiState):
    gw, cust, client = setup
    for url in (f"{image_server.url}/cat.png", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd"):
        content = [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
        assert "169.254" not in exc.value.message or url.startswith("http://169.254")
    assert fake_gemini.requests == []
    gw.flush()
    assert gw.credits(cust.email)["held_nanos"] == 0
