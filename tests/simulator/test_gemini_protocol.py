"""The fake Gemini upstream, exercised over real HTTP with the real google-genai SDK and raw HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from tests.support.servers import ServerThread
from tokenhub.simulator.gemini import STATE_KEY, FakeGeminiState, create_app

API_KEY = "gm-test"
FLASH = "gemini-2.5-flash"
GEMINI_3 = "gemini-3-pro-preview"
REPLY = "Hello! This is a fake reply."


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app(api_keys={API_KEY}, token_delay=0.0)).start()
    yield srv
    srv.stop()


@pytest.fixture
def state(server: ServerThread) -> FakeGeminiState:
    st = server.app[STATE_KEY]
    assert server.app["state"] is st
    wait_for(lambda: st.active_requests == 0)  # let the previous test's aborted streams wind down
    st.reset()
    return st


@pytest.fixture
def make_client(server: ServerThread, state: FakeGeminiState) -> Iterator[Callable[..., genai.Client]]:
    clients: list[genai.Client] = []

    def make(api_key: str = API_KEY, timeout_ms: int = 5000) -> genai.Client:
        client = genai.Client(api_key=api_key, http_options=types.HttpOptions(
            base_url=server.url, api_version="v1beta", timeout=timeout_ms))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def shared_client(server: ServerThread) -> Iterator[genai.Client]:
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(
        base_url=server.url, api_version="v1beta", timeout=5000))  # building a client costs ~0.2 s
    yield client
    client.close()


@pytest.fixture
def client(shared_client: genai.Client, state: FakeGeminiState) -> genai.Client:
    return shared_client


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def raw_post(server: ServerThread, path: str, body: Any, headers: dict[str, str] | None = None,
             api_key: str | None = API_KEY) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if api_key is not None:
        hdrs["x-goog-api-key"] = api_key
    try:
        conn.request("POST", path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def gen(server: ServerThread, body: dict[str, Any], model: str = FLASH, **kw: Any) -> tuple[int, Any]:
    status, _, data = raw_post(server, f"/v1beta/models/{model}:generateContent", body, **kw)
    return status, json.loads(data)


def sse_events(raw: bytes, separator: bytes = b"\r\n\r\n") -> list[dict[str, Any]]:
    assert raw.endswith(separator)
    frames = raw[: -len(separator)].split(separator)
    assert all(f.startswith(b"data: ") for f in frames)
    return [json.loads(f[6:]) for f in frames]


def weather_tool() -> types.Tool:
    return types.Tool(function_declarations=[types.FunctionDeclaration(
        name="lookup_weather", description="Weather by city",
        parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)},
                                required=["city"]))])


# --------------------------------------------------------------------------- generate_content via the SDK


def test_generate_content_text(client: genai.Client, state: FakeGeminiState) -> None:
    r = client.models.generate_content(model=FLASH, contents="Say hi",
                                       config=types.GenerateContentConfig(system_instruction="Be brief."))
    assert r.text == REPLY
    candidate = r.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.STOP and candidate.index == 0
    assert candidate.content.role == "model"  # type: ignore[union-attr]
    assert r.model_version == FLASH and r.response_id and len(r.response_id) == 23
    usage = r.usage_metadata
    assert usage is not None
    # "Be brief." (2 words) + "Say hi" (2 words); 6 reply pieces; no thoughts, nothing cached
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (4, 6, 10)
    assert usage.thoughts_token_count is None and usage.cached_content_token_count is None

    recorded = state.requests[-1]
    assert recorded.method == "POST" and recorded.path == f"/v1beta/models/{FLASH}:generateContent"
    assert recorded.headers["X-Goog-Api-Key"] == API_KEY and recorded.query == {}
    assert recorded.json["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert recorded.json["contents"][0] == {"parts": [{"text": "Say hi"}], "role": "user"}


def test_thinking_and_usage(client: genai.Client) -> None:
    with_thoughts = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    r = client.models.generate_content(model=FLASH, contents="think #fake:thinking=5 #fake:cached=2",
                                       config=with_thoughts)
    parts = r.candidates[0].content.parts  # type: ignore[index,union-attr]
    assert parts is not None
    assert parts[0].thought is True and parts[0].text == "Let me think about this"
    assert parts[1].thought is None and parts[1].text == REPLY
    assert r.text == REPLY  # the SDK skips thought parts
    usage = r.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 3 and usage.cached_content_token_count == 2
    assert usage.candidates_token_count == 6 and usage.thoughts_token_count == 5
    assert usage.total_token_count == 3 + 6 + 5  # thoughts are not inside candidatesTokenCount
    assert usage.cache_tokens_details and usage.cache_tokens_details[0].token_count == 2

    hidden = client.models.generate_content(model=FLASH, contents="think #fake:thinking=5")
    parts = hidden.candidates[0].content.parts  # type: ignore[index,union-attr]
    assert parts is not None and [p.thought for p in parts] == [None]
    assert hidden.usage_metadata and hidden.usage_metadata.thoughts_token_count == 5


@pytest.mark.parametrize(("kind", "value"), [("negative", -7), ("float", 12.5), ("string", "12")])
def test_bad_usage_directive(server: ServerThread, kind: str, value: Any) -> None:
    status, body = gen(server, {"contents": [user(f"hi #fake:bad_usage={kind}")]})
    assert status == 200 and body["usageMetadata"]["candidatesTokenCount"] == value


def test_max_output_tokens_counts_thoughts(client: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=4)
    r = client.models.generate_content(model=FLASH, contents="#fake:thinking=3", config=config)
    assert r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]
    assert r.text == "Hello! "
    assert r.usage_metadata and (r.usage_metadata.thoughts_token_count, r.usage_metadata.candidates_token_count) == (3, 1)
    r = client.models.generate_content(model=FLASH, contents="#fake:tokens=3 #fake:max_tokens")
    assert r.text == "Hello! This is" and r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]


def test_special_finish_reasons(client: genai.Client) -> None:
    r = client.models.generate_content(model=FLASH, contents="#fake:safety")
    candidate = r.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.SAFETY and candidate.content is None
    assert candidate.safety_ratings and any(s.blocked for s in candidate.safety_ratings)
    assert r.text is None

    r = client.models.generate_content(model=FLASH, contents="#fake:recitation")
    assert r.candidates[0].finish_reason == types.FinishReason.RECITATION  # type: ignore[index]
    assert r.text == "Hello! This is "

    r = client.models.generate_content(model=FLASH, contents="#fake:malformed_call")
    candidate = r.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.MALFORMED_FUNCTION_CALL and candidate.content is None
    assert r.usage_metadata and r.usage_metadata.candidates_token_count is None


def test_malformed_call_raw(server: ServerThread) -> None:
    # the SDK's Developer-API converter drops finishMessage, so look at the wire
    status, body = gen(server, {"contents": [user("#fake:malformed_call")]})
    assert status == 200 and body["candidates"] == [{
        "finishReason": "MALFORMED_FUNCTION_CALL", "index": 0,
        "finishMessage": 'Malformed function call: print(default_api.get_weather(city=["Par'}]
    assert body["usageMetadata"] == {"promptTokenCount": 1, "totalTokenCount": 1,
                                     "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1}]}


def test_blocked_prompt(client: genai.Client) -> None:
    r = client.models.generate_content(model=FLASH, contents="bad #fake:blocked_prompt")
    assert r.candidates is None and r.text is None
    assert r.prompt_feedback and r.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert r.usage_metadata and r.usage_metadata.total_token_count == r.usage_metadata.prompt_token_count == 2
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="#fake:blocked_prompt"))
    assert len(chunks) == 1 and chunks[0].candidates is None
    assert chunks[0].prompt_feedback and chunks[0].prompt_feedback.block_reason == types.BlockedReason.SAFETY


# --------------------------------------------------------------------------- streaming via the SDK


def test_stream_reassembles_text(client: genai.Client) -> None:
    contents = "Tell me things #fake:tokens=9 #fake:thinking=2 #fake:cached=1"
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    full = client.models.generate_content(model=FLASH, contents=contents, config=config)
    chunks = list(client.models.generate_content_stream(model=FLASH, contents=contents, config=config))
    assert len(chunks) == 2 + 9
    assert "".join(c.text or "" for c in chunks) == full.text == "Hello! This is a fake reply. Hello! This is"
    thoughts = [p.text for c in chunks for p in c.candidates[0].content.parts if p.thought]  # type: ignore[index,union-attr]
    assert "".join(thoughts) == "Let me"  # type: ignore[arg-type]
    assert len({c.response_id for c in chunks}) == 1 and all(c.model_version == FLASH for c in chunks)
    assert [c.candidates[0].finish_reason for c in chunks[:-1]] == [None] * 10  # type: ignore[index]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    counts = [c.usage_metadata.candidates_token_count or 0 for c in chunks]  # type: ignore[union-attr]
    assert counts == sorted(counts) and counts[0] == 0  # cumulative, absent while zero
    assert chunks[-1].usage_metadata == full.usage_metadata


def test_stream_gemini_3_ends_with_signature_part(client: genai.Client, state: FakeGeminiState) -> None:
    chunks = list(client.models.generate_content_stream(model=GEMINI_3, contents="hi"))
    last = chunks[-1].candidates[0]  # type: ignore[index]
    assert last.finish_reason == types.FinishReason.STOP
    assert last.content and last.content.parts and last.content.parts[0].text == ""
    signature = last.content.parts[0].thought_signature
    assert signature and base64.b64encode(signature).decode() in state.signatures
    assert "".join(c.text or "" for c in chunks) == REPLY


def test_stream_error_mid(client: genai.Client) -> None:
    received: list[str] = []
    with pytest.raises(errors.ServerError) as info:
        for chunk in client.models.generate_content_stream(model=FLASH, contents="#fake:error_mid"):
            received.append(chunk.text or "")
    assert "".join(received) == "Hello! This is "
    assert info.value.code == 500 and info.value.status == "INTERNAL"


# --------------------------------------------------------------------------- function calls and signatures


def test_function_calls_and_replay(client: genai.Client, state: FakeGeminiState) -> None:
    config = types.GenerateContentConfig(tools=[weather_tool()])
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris and Rome? #fake:tools")])
    r = client.models.generate_content(model=GEMINI_3, contents=[question], config=config)
    candidate = r.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.STOP  # no tool-specific finish reason
    parts = candidate.content.parts  # type: ignore[union-attr]
    assert parts and [p.function_call.name for p in parts] == ["lookup_weather"] * 2  # type: ignore[union-attr]
    assert [p.function_call.args for p in parts] == [{"city": "Paris"}, {"city": "Rome"}]  # type: ignore[union-attr]
    assert parts[0].thought_signature and parts[1].thought_signature is None
    assert r.usage_metadata and r.usage_metadata.candidates_token_count == 2

    responses = types.Content(role="user", parts=[
        types.Part.from_function_response(name="lookup_weather", response={"temp_c": t}) for t in (18, 21)])
    second = client.models.generate_content(
        model=GEMINI_3, contents=[question, candidate.content, responses], config=config)  # type: ignore[list-item]
    assert second.text == REPLY  # the last user content holds only function responses: no directives
    replayed = state.requests[-1].json["contents"][1]["parts"][0]["thoughtSignature"]
    # the SDK re-encodes the signature bytes as URL-safe base64; Google (and the fake) accept either alphabet
    assert replayed.replace("-", "+").replace("_", "/") in state.signatures

    unsigned = types.Content(role="model", parts=[types.Part(function_call=p.function_call) for p in parts])
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=GEMINI_3, contents=[question, unsigned, responses], config=config)
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert info.value.message and info.value.message.startswith(
        "Function call is missing a thought_signature in functionCall parts.")
    assert "`default_api:lookup_weather` , position 2." in info.value.message

    # gemini-2.5 does not enforce; an earlier (completed) turn is not validated either
    assert client.models.generate_content(model=FLASH, contents=[question, unsigned, responses], config=config).text
    later = types.Content(role="user", parts=[types.Part(text="thanks")])
    answer = types.Content(role="model", parts=[types.Part(text="ok")])
    assert client.models.generate_content(
        model=GEMINI_3, contents=[question, unsigned, responses, answer, later], config=config).text


def test_signature_sentinel_and_corrupted(server: ServerThread) -> None:
    def history(signature: str) -> dict[str, Any]:
        return {"contents": [
            user("weather?"),
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": signature}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": 1}}}]},
        ]}

    status, body = gen(server, history("skip_thought_signature_validator"), model=GEMINI_3)
    assert status == 200 and body["candidates"][0]["finishReason"] == "STOP"
    status, body = gen(server, history("Y29ycnVwdGVk"), model=GEMINI_3)
    assert (status, body["error"]["message"]) == (400, "Corrupted thought signature.")


def test_stream_function_calls_in_one_event(server: ServerThread) -> None:
    body = {"contents": [user("#fake:tools #fake:thinking=2")],
            "tools": [{"functionDeclarations": [{"name": "get_time"}]}],
            "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    status, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse", body)
    assert status == 200
    events = sse_events(raw)
    assert [e["candidates"][0]["content"]["parts"][0].get("thought") for e in events] == [True, True, None]
    calls = events[-1]["candidates"][0]["content"]["parts"]
    assert [c["functionCall"] for c in calls] == [{"name": "get_time", "args": {"city": "Paris"}},
                                                  {"name": "get_time", "args": {"city": "Rome"}}]
    assert "thoughtSignature" in calls[0] and "thoughtSignature" not in calls[1]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["candidates"][0]["finishMessage"] == "Model generated function call(s)."
    assert events[-1]["usageMetadata"] == {
        "promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 6,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2}], "thoughtsTokenCount": 2}


# --------------------------------------------------------------------------- errors via the SDK


@pytest.mark.parametrize(
    ("code", "exc_type", "status"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (403, errors.ClientError, "PERMISSION_DENIED"),
        (404, errors.ClientError, "NOT_FOUND"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
def test_error_statuses(client: genai.Client, code: int, exc_type: type[errors.APIError], status: str) -> None:
    for stream in (False, True):
        with pytest.raises(exc_type) as info:
            if stream:
                list(client.models.generate_content_stream(model=FLASH, contents=f"#fake:status={code}"))
            else:
                client.models.generate_content(model=FLASH, contents=f"#fake:status={code}")
        assert (info.value.code, info.value.status) == (code, status)
        assert info.value.message
    if code == 429:
        details = info.value.details["error"]["details"]
        retry = [d for d in details if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]


def test_auth_and_unknown_model(make_client: Callable[..., genai.Client]) -> None:
    with pytest.raises(errors.ClientError) as info:
        make_client(api_key="wrong").models.generate_content(model=FLASH, contents="hi")
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.message == "API key not valid. Please pass a valid API key."
    with pytest.raises(errors.ClientError) as info:
        make_client().models.generate_content(model="gemini-9-ultra", contents="hi")
    assert info.value.code == 404 and info.value.message == (
        "models/gemini-9-ultra is not found for API version v1beta, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods.")


def test_count_tokens_and_models(client: genai.Client) -> None:
    assert client.models.count_tokens(model=FLASH, contents="one two three").total_tokens == 3
    names = [m.name for m in client.models.list()]
    assert f"models/{FLASH}" in names and f"models/{GEMINI_3}" in names
    model = client.models.get(model=FLASH)
    assert model.name == f"models/{FLASH}" and model.input_token_limit
    with pytest.raises(errors.ClientError):
        client.models.get(model="nope")


# --------------------------------------------------------------------------- raw HTTP: framing


def test_sse_framing(server: ServerThread) -> None:
    path = f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"
    status, headers, raw = raw_post(server, path, {"contents": [user("hi #fake:tokens=3")]})
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert b"[DONE]" not in raw and b"event:" not in raw and b"\n\n" not in raw.replace(b"\r\n\r\n", b"")
    events = sse_events(raw)
    assert len(events) == 3
    assert raw.startswith(b'data: {"candidates": [{"content": {"parts": [{"text": "Hello! "}],"role": "model"},'
                          b'"index": 0}],"usageMetadata": {"promptTokenCount": 2,')
    assert events[-1]["candidates"][0] == {"content": {"parts": [{"text": "is"}], "role": "model"},
                                           "finishReason": "STOP", "index": 0}
    assert all(set(e) == {"candidates", "usageMetadata", "modelVersion", "responseId"} for e in events)
    assert [e["usageMetadata"]["candidatesTokenCount"] for e in events] == [1, 2, 3]  # cumulative

    status, _, raw = raw_post(server, path, {"contents": [user("#fake:tokens=2 #fake:lf")]})
    assert b"\r" not in raw and len(sse_events(raw, b"\n\n")) == 2


def test_json_array_stream_and_pretty_body(server: ServerThread) -> None:
    body = {"contents": [user("#fake:tokens=3")]}
    status, headers, raw = raw_post(server, f"/v1beta/models/{FLASH}:streamGenerateContent", body)
    assert status == 200 and headers["content-type"] == "application/json; charset=UTF-8"
    assert raw.startswith(b"[{\n  \"candidates\"") and raw.endswith(b"}\n]") and raw.count(b"\n,\r\n") == 2
    events = json.loads(raw)
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "Hello! This is"

    status, headers, raw = raw_post(server, f"/v1beta/models/{FLASH}:generateContent", body)
    assert raw.startswith(b'{\n  "candidates": [\n    {\n') and raw.endswith(b"}\n")
    assert headers["server"] == "scaffolding on HTTPServer2"

    # before the stream starts, a non-SSE stream's error is wrapped in an array
    status, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:streamGenerateContent", {"contents": []})
    assert status == 400 and json.loads(raw)[0]["error"]["status"] == "INVALID_ARGUMENT"
    status, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse", {"contents": []})
    assert status == 400 and json.loads(raw)["error"]["code"] == 400


def test_stream_failures(server: ServerThread) -> None:
    path = f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"
    _, _, raw = raw_post(server, path, {"contents": [user("#fake:truncate")]})
    events = sse_events(raw)
    assert len(events) == 3 and all("finishReason" not in e["candidates"][0] for e in events)
    _, _, raw = raw_post(server, path, {"contents": [user("#fake:error_mid")]})
    assert sse_events(raw)[-1] == {"error": {"code": 500, "status": "INTERNAL", "message": (
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting")}}
    _, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:streamGenerateContent", {"contents": [user("#fake:error_mid")]})
    assert json.loads(raw)[-1]["error"]["code"] == 500
    _, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:generateContent", {"contents": [user("#fake:truncate")]})
    with pytest.raises(ValueError):
        json.loads(raw)


def test_reset_aborts_connection(server: ServerThread, state: FakeGeminiState) -> None:
    path = f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        raw_post(server, path, {"contents": [user("#fake:reset #fake:tokens=40")]})
    wait_for(lambda: state.active_streams == 0)
    assert state.cancelled_streams == 0  # the server hung up, not the client


# --------------------------------------------------------------------------- raw HTTP: auth and errors


def test_query_key_auth(server: ServerThread, state: FakeGeminiState) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}]}  # no role: AI Studio treats it as user
    status, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:generateContent?key={API_KEY}", body, api_key=None)
    assert status == 200 and json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"] == REPLY
    assert state.requests[-1].query == {"key": API_KEY}

    status, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:generateContent?key=bad", body, api_key=None)
    assert status == 400
    assert json.loads(raw) == {"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
             "message": "API key not valid. Please pass a valid API key."}]}}

    status, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:generateContent", body, api_key=None)
    assert status == 403 and json.loads(raw)["error"]["status"] == "PERMISSION_DENIED"
    assert json.loads(raw)["error"]["message"].startswith("Method doesn't allow unregistered callers")


def test_unknown_url_is_html_404(server: ServerThread) -> None:
    status, headers, raw = raw_post(server, "/v1beta/nope", {})
    assert status == 404 and headers["content-type"].startswith("text/html") and b"Error 404" in raw
    status, _, raw = raw_post(server, f"/v1beta/models/{FLASH}:embedText", {})
    assert status == 404


def test_open_auth_when_no_keys() -> None:
    srv = ServerThread(create_app(api_keys=None, models=["custom-model"])).start()
    try:
        status, body = gen(srv, {"contents": [user("hi")]}, model="custom-model", api_key=None)
        assert status == 200 and body["modelVersion"] == "custom-model"
    finally:
        srv.stop()


FUNCTION_TURN = [
    user("weather?"),
    {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": []}, "* GenerateContentRequest.contents: contents is not specified\n"),
        ({}, "* GenerateContentRequest.contents: contents is not specified\n"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "Please use a valid role: user, model."),
        ({"contents": [{"role": "user", "parts": []}]},
         "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n"),
        ({"contents": [*FUNCTION_TURN, {"role": "user", "parts": [{"functionResponse": {"response": {}}}]}]},
         "* GenerateContentRequest.contents[2].parts[0].function_response.name: Name cannot be empty.\n"),
        ({"contents": [*FUNCTION_TURN, {"role": "user", "parts": [
            {"functionResponse": {"name": "other", "response": {}}}]}]},
         "* GenerateContentRequest.contents[2].parts[0].function_response.name: Function response name `other` "
         "does not match any function call of the preceding function call turn.\n"),
        ({"contents": [*FUNCTION_TURN, {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {}}}] * 2}]},
         "Please ensure that the number of function response parts is equal to the number of function call parts "
         "of the function call turn."),
        ({"contents": [user("x"), {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
         "Please ensure that function response turn comes immediately after a function call turn."),
        ({"contents": FUNCTION_TURN[1:]},
         "Please ensure that function call turn comes immediately after a user turn or after a function response turn."),
        ({"contents": [user("x #fake:strict_roles"), user("y #fake:strict_roles")]},
         "Please ensure that multiturn requests alternate between user and model."),
        ({"contents": [user("x")], "generationConfig": {"thinkingConfig": {"thinkingBudget": 10, "thinkingLevel": "LOW"}}},
         "You can only set only one of thinking budget and thinking level."),
        ({"contents": [user("x")], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}]},
         "* GenerateContentRequest.tools[0].function_declarations[0].parameters.properties: should be non-empty for "
         "OBJECT type\n"),
        ({"contents": [user("x")], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
            "type": "OBJECT", "properties": {"a": {"type": "OBJECT", "properties": {}}}}}]}]},
         "* GenerateContentRequest.tools[0].function_declarations[0].parameters.properties[\"a\"].properties: should "
         "be non-empty for OBJECT type\n"),
        ({"contents": [user("#fake:nope")]}, "Unknown fake directive '#fake:nope'."),
        ({"contents": [user("#fake:tokens=x")]}, "Invalid value for fake directive '#fake:tokens': 'x'."),
    ],
)
def test_validation_errors(server: ServerThread, body: dict[str, Any], message: str) -> None:
    status, response = gen(server, body)
    assert status == 400
    assert response["error"] == {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}


def test_schema_unknown_fields(server: ServerThread) -> None:
    parameters = {"type": "object", "additionalProperties": False,
                  "properties": {"tags": {"type": "array", "items": {"type": "string", "const": "x"}}}}
    status, response = gen(server, {"contents": [user("x")], "tools": [{"functionDeclarations": [
        {"name": "f", "parameters": parameters}]}]})
    assert status == 400
    first = ("Invalid JSON payload received. Unknown name \"additionalProperties\" at "
             "'tools[0].function_declarations[0].parameters': Cannot find field.")
    second = ("Invalid JSON payload received. Unknown name \"const\" at "
              "'tools[0].function_declarations[0].parameters.properties[0].value.items': Cannot find field.")
    assert response["error"]["message"] == f"{first}\n{second}"
    assert response["error"]["details"] == [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
        {"field": "tools[0].function_declarations[0].parameters", "description": first},
        {"field": "tools[0].function_declarations[0].parameters.properties[0].value.items", "description": second}]}]

    # parametersJsonSchema takes JSON Schema as-is; zero-arg tools may omit parameters
    status, _ = gen(server, {"contents": [user("x")], "tools": [{"function_declarations": [
        {"name": "f", "parametersJsonSchema": parameters}, {"name": "g"}]}]})
    assert status == 200
    status, response = gen(server, {"contents": [user("x")], "messages": []})
    assert status == 400 and response["error"]["message"] == (
        "Invalid JSON payload received. Unknown name \"messages\": Cannot find field.")
    status, response = gen(server, b"{not json")  # type: ignore[arg-type]
    assert status == 400 and response["error"]["message"].startswith("Invalid JSON payload received.")


def test_accepted_history_shapes(server: ServerThread) -> None:
    # consecutive same roles are accepted (the Developer API takes them); snake_case too
    body = {"contents": [user("a"), user("b"), {"role": "model", "parts": [{"text": "c"}]},
                         {"role": "model", "parts": [{"text": "d"}]}, user("e")],
            "system_instruction": {"parts": [{"text": "sys"}]},
            "generation_config": {"thinking_config": {"thinking_level": "LOW", "include_thoughts": True}}}
    status, response = gen(server, body)
    assert status == 200 and response["usageMetadata"]["promptTokenCount"] == 6


# --------------------------------------------------------------------------- timing and cancellation


def test_client_disconnect_cancels_stream(server: ServerThread, state: FakeGeminiState) -> None:
    body = json.dumps({"contents": [user("#fake:tokens=500 #fake:delay=0.01")]}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1beta/models/" + FLASH.encode() + b":streamGenerateContent?alt=sse HTTP/1.1\r\n"
                     b"Host: x\r\nx-goog-api-key: " + API_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        received = b""
        while b"data: " not in received:
            received += sock.recv(65536)
        wait_for(lambda: state.active_streams == 1)
    wait_for(lambda: state.cancelled_streams == 1 and state.active_streams == 0)
    assert state.active_requests == 0


def test_hang_until_client_gives_up(make_client: Callable[..., genai.Client], state: FakeGeminiState) -> None:
    with pytest.raises(Exception) as info:  # httpx.ReadTimeout surfaces unwrapped
        make_client(timeout_ms=300).models.generate_content(model=FLASH, contents="#fake:hang")
    assert "timeout" in type(info.value).__name__.lower() or "timed out" in str(info.value).lower()
    wait_for(lambda: state.cancelled_requests == 1 and state.active_requests == 0)
    assert state.cancelled_streams == 0


def test_slow_first_and_delay(client: genai.Client) -> None:
    started = time.monotonic()
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="#fake:slow_first=0.2 #fake:delay=0.02"))
    assert time.monotonic() - started >= 0.2 + 0.02 * (len(chunks) - 1) * 0.9
