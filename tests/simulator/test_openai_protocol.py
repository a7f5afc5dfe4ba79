"""The fake OpenAI upstream, exercised over real HTTP with the real openai SDK."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.support.servers import ServerThread
from tokenhub.simulator.openai import FakeOpenAIState, create_app

API_KEY = "sk-test"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app(api_keys={API_KEY}, token_delay=0.0)).start()
    yield srv
    srv.stop()


@pytest.fixture
def state(server: ServerThread) -> FakeOpenAIState:
    st: FakeOpenAIState = server.app["state"]
    wait_for(lambda: st.active_requests == 0)  # let the previous test's aborted streams wind down
    st.reset()
    return st


@pytest.fixture
def base_url(server: ServerThread, state: FakeOpenAIState) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def make_client(base_url: str) -> Iterator[Callable[..., openai.OpenAI]]:
    clients: list[openai.OpenAI] = []

    def make(api_key: str = API_KEY, prefix: str = "/v1", **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("timeout", 5.0)
        client = openai.OpenAI(base_url=base_url + prefix, api_key=api_key, max_retries=0, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def raw_post(base_url: str, path: str, body: bytes, api_key: str = API_KEY) -> tuple[int, dict[str, str], bytes]:
    port = int(base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {api_key}",
                                                       "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_stream(base_url: str, text: str, **extra: Any) -> bytes:
    body = {"model": "gpt-4.1", "messages": user(text), "stream": True, **extra}
    status, headers, data = raw_post(base_url, "/v1/chat/completions", json.dumps(body).encode())
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    return data


def stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


# --------------------------------------------------------------------------- basics


def test_plain_completion(client: openai.OpenAI, state: FakeOpenAIState) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4.1", messages=user("Say hi"))
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4.1"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello! This is a fake reply."
    assert choice.message.refusal is None and choice.message.annotations == []
    assert choice.finish_reason == "stop" and choice.logprobs is None
    usage = completion.usage
    assert usage is not None
    # system "Be brief." (2 words) + user "Say hi" (2 words) + 3 per message
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 6, 16)
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0
    assert completion.system_fingerprint

    recorded = state.requests[-1]
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["Authorization"] == f"Bearer {API_KEY}"
    assert recorded.json["messages"][1]["content"] == "Say hi"


def test_path_without_v1_and_models(make_client: Callable[..., openai.OpenAI]) -> None:
    client = make_client(prefix="")
    assert client.chat.completions.create(model="m", messages=user("x")).choices[0].message.content
    assert "gpt-4.1" in [m.id for m in make_client().models.list()]


def test_tokens_length_echo_model(client: openai.OpenAI) -> None:
    c = client.chat.completions.create(model="gpt-4.1",
                                       messages=user("#fake:tokens=8 #fake:length #fake:echo_model=gpt-4.1-2025-04-14"))
    assert c.choices[0].message.content == "Hello! This is a fake reply. Hello! This"
    assert c.choices[0].finish_reason == "length"
    assert c.model == "gpt-4.1-2025-04-14"
    assert c.usage and c.usage.completion_tokens == 8


def test_max_tokens_budget_truncates(client: openai.OpenAI) -> None:
    c = client.chat.completions.create(model="m", messages=user("hi"), max_completion_tokens=3)
    assert c.choices[0].finish_reason == "length"
    assert c.usage and c.usage.completion_tokens == 3


def test_unknown_directive_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=user("#fake:nope"))


# --------------------------------------------------------------------------- streaming


def test_stream_accumulates_text(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4.1", messages=user("hi"), stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert stream_text(chunks) == "Hello! This is a fake reply."
    assert len({(c.id, c.created) for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert len(chunks) == 1 + 6 + 1


def test_stream_usage_matches_non_stream(client: openai.OpenAI) -> None:
    messages = user("Tell me things #fake:tokens=11 #fake:cached=4")
    full = client.chat.completions.create(model="m", messages=messages)
    chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert "usage" in chunks[0].model_fields_set  # explicit "usage": null
    assert last.usage.model_dump() == full.usage.model_dump()  # type: ignore[union-attr]
    assert stream_text(chunks) == full.choices[0].message.content
    assert last.usage.prompt_tokens_details.cached_tokens == 4  # type: ignore[union-attr]


def test_usage_on_last_and_no_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=user("#fake:usage_on_last"), stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    chunks = list(client.chat.completions.create(model="m", messages=user("#fake:no_usage"), stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.usage is None and c.choices for c in chunks)
    assert client.chat.completions.create(model="m", messages=user("#fake:no_usage")).usage is None


@pytest.mark.parametrize(("kind", "value"), [("negative", -7), ("float", 12.5), ("string", "12")])
def test_bad_usage_directive(base_url: str, kind: str, value: Any) -> None:
    body = {"model": "gpt-4.1", "messages": user(f"hi #fake:bad_usage={kind}")}
    status, _, data = raw_post(base_url, "/v1/chat/completions", json.dumps(body).encode())
    assert status == 200 and json.loads(data)["usage"]["completion_tokens"] == value
    raw = raw_stream(base_url, f"hi #fake:bad_usage={kind}", stream_options={"include_usage": True})
    last = json.loads(raw.split(b"data: ")[-2].strip())
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == value


def test_deepseek_usage(client: openai.OpenAI) -> None:
    c = client.chat.completions.create(model="deepseek-chat", messages=user("#fake:deepseek_usage #fake:cached=5"))
    extra = c.usage.model_extra or {}  # type: ignore[union-attr]
    assert extra["prompt_cache_hit_tokens"] == 5
    assert extra["prompt_cache_hit_tokens"] + extra["prompt_cache_miss_tokens"] == c.usage.prompt_tokens  # type: ignore[union-attr]


def test_n_choices(client: openai.OpenAI) -> None:
    c = client.chat.completions.create(model="m", messages=user("hi"), n=2)
    assert [ch.index for ch in c.choices] == [0, 1]
    assert c.usage and c.usage.completion_tokens == 12
    chunks = list(client.chat.completions.create(model="m", messages=user("hi"), n=2, stream=True))
    assert [ch.choices[0].index for ch in chunks[:4]] == [0, 1, 0, 1]
    for index in (0, 1):
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices[0].index == index)
        assert text == c.choices[index].message.content


def test_reasoning(client: openai.OpenAI) -> None:
    messages = user("think #fake:reasoning=5")
    full = client.chat.completions.create(model="deepseek-reasoner", messages=messages)
    message_extra = full.choices[0].message.model_extra or {}
    assert message_extra["reasoning_content"] == "Let me think about this"
    assert full.usage and full.usage.completion_tokens == 11
    assert full.usage.completion_tokens_details and full.usage.completion_tokens_details.reasoning_tokens == 5
    chunks = list(client.chat.completions.create(model="deepseek-reasoner", messages=messages, stream=True))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    assert reasoning == message_extra["reasoning_content"]
    assert stream_text(chunks) == full.choices[0].message.content
    first_content = next(i for i, c in enumerate(chunks) if c.choices[0].delta.content)
    last_reasoning = max(i for i, c in enumerate(chunks) if (c.choices[0].delta.model_extra or {}).get("reasoning_content"))
    assert last_reasoning < first_content


def test_keepalive_and_crlf_streams(client: openai.OpenAI, base_url: str) -> None:
    for directive in ("#fake:keepalive", "#fake:crlf", "#fake:keepalive #fake:crlf"):
        chunks = list(client.chat.completions.create(model="m", messages=user(directive), stream=True))
        assert stream_text(chunks) == "Hello! This is a fake reply."
    raw = raw_stream(base_url, "#fake:keepalive #fake:crlf")
    assert b": keep-alive\r\n\r\n" in raw and b"\n\n" not in raw
    assert raw.endswith(b"data: [DONE]\r\n\r\n") or raw.rstrip(b"\r\n").endswith(b"data: [DONE]")
    full = client.chat.completions.create(model="m", messages=user("#fake:keepalive"))
    assert full.choices[0].message.content == "Hello! This is a fake reply."


def test_raw_stream_framing(base_url: str) -> None:
    raw = raw_stream(base_url, "hi", stream_options={"include_usage": True})
    assert b"event:" not in raw
    events = raw.decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])
    assert all("obfuscation" in c for c in chunks)
    plain = raw_stream(base_url, "hi", stream_options={"include_obfuscation": False})
    assert b"obfuscation" not in plain and b'"usage"' not in plain


def test_content_finish_shares_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=user("#fake:content_finish"), stream=True))
    assert chunks[-1].choices[0].delta.content == "reply."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert stream_text(chunks) == "Hello! This is a fake reply."


def test_open_auth_when_no_keys() -> None:
    srv = ServerThread(create_app(api_keys=None)).start()
    try:
        with openai.OpenAI(base_url=f"http://127.0.0.1:{srv.port}/v1", api_key="anything", max_retries=0) as c:
            assert c.chat.completions.create(model="m", messages=user("hi")).choices
    finally:
        srv.stop()


# --------------------------------------------------------------------------- tools


def test_parallel_tool_calls_stream(client: openai.OpenAI, base_url: str) -> None:
    with client.chat.completions.stream(model="gpt-4.1", messages=user("weather? #fake:tools")) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]  # type: ignore[union-attr]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]  # type: ignore[union-attr]
    assert calls[0].id != calls[1].id

    raw = raw_stream(base_url, "#fake:tools")
    chunks = [json.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: {")]
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    assert first["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in (c["choices"][0]["delta"] for c in chunks)
                 if d.get("tool_calls") and d["tool_calls"][0]["index"] == 0 and "id" not in d["tool_calls"][0]]
    assert len(fragments) > 1 and "".join(fragments) == '{"city":"Paris"}'


def test_tools_non_stream_uses_request_tool_name(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    c = client.chat.completions.create(model="m", messages=user("#fake:tools"), tools=tools)  # type: ignore[arg-type]
    assert c.choices[0].message.content is None
    assert [t.function.name for t in c.choices[0].message.tool_calls or []] == ["lookup", "lookup"]  # type: ignore[union-attr]
    streamed = list(client.chat.completions.create(model="m", messages=user("#fake:tools"), tools=tools,  # type: ignore[arg-type]
                                                   stream=True, stream_options={"include_usage": True}))
    assert streamed[-1].usage and c.usage and streamed[-1].usage.completion_tokens == c.usage.completion_tokens


def test_tool_whole(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=user("#fake:tool_whole"), stream=True))
    tool_deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
    assert len(tool_deltas) == 1
    assert tool_deltas[0][0].function.arguments == '{"city":"Paris"}'  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (413, openai.APIStatusError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (502, openai.InternalServerError),
        (503, openai.InternalServerError),
        (504, openai.InternalServerError),
        (529, openai.InternalServerError),
    ],
)
def test_error_statuses(client: openai.OpenAI, status: int, exc_type: type[openai.APIStatusError]) -> None:
    with pytest.raises(exc_type) as info:
        client.chat.completions.create(model="gpt-4.1", messages=user(f"#fake:status={status}"), stream=True)
    err = info.value
    assert err.status_code == status
    assert isinstance(err.body, dict) and {"message", "type", "param", "code"} <= set(err.body)
    assert err.response.headers["x-request-id"]
    if status == 404:
        assert err.code == "model_not_found"
    if status == 429:
        assert err.code == "rate_limit_exceeded"
        assert err.response.headers["retry-after"] == "1"
        assert err.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_retry_after_directive(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=user("#fake:status=503 #fake:retry_after=7"))
    assert info.value.response.headers["retry-after"] == "7"


def test_auth_errors(make_client: Callable[..., openai.OpenAI]) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        make_client(api_key="sk-wrong").chat.completions.create(model="m", messages=user("hi"))
    assert info.value.code == "invalid_api_key"
    assert info.value.type == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError):
        make_client(api_key="sk-wrong").models.list()


def test_bad_requests(client: openai.OpenAI, base_url: str) -> None:
    status, _, body = raw_post(base_url, "/v1/chat/completions", b"{not json")
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = raw_post(base_url, "/v1/chat/completions", b'{"messages": []}')
    assert status == 400
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[])
    assert info.value.param == "messages"
    status, _, body = raw_post(base_url, "/v1/nope", b"{}")
    assert status == 404 and json.loads(body)["error"]["message"] == "Invalid URL (POST /v1/nope)"


def test_error_mid_stream(client: openai.OpenAI) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="m", messages=user("#fake:error_mid"), stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received)  # some content arrived first
    assert info.value.type == "server_error"  # type: ignore[attr-defined]


def test_reset_raises_connection_error(client: openai.OpenAI, state: FakeOpenAIState) -> None:
    with pytest.raises(openai.APIConnectionError):
        list(client.chat.completions.create(model="m", messages=user("#fake:reset #fake:tokens=40"), stream=True))
    wait_for(lambda: state.active_streams == 0)
    assert state.cancelled_streams == 0  # the server hung up, not the client


def test_truncate_and_malformed(client: openai.OpenAI, base_url: str) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=user("#fake:truncate"), stream=True))
    assert chunks and all(c.choices[0].finish_reason is None for c in chunks)
    assert b"[DONE]" not in raw_stream(base_url, "#fake:truncate")
    with pytest.raises(ValueError):  # json.JSONDecodeError from the SDK's SSE decoder
        list(client.chat.completions.create(model="m", messages=user("#fake:malformed"), stream=True))


# --------------------------------------------------------------------------- timing and cancellation


def test_client_disconnect_cancels_stream(client: openai.OpenAI, state: FakeOpenAIState) -> None:
    stream = client.chat.completions.create(model="m", messages=user("#fake:tokens=500 #fake:delay=0.01"),
                                            stream=True)
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    assert state.active_streams == 1
    stream.close()
    wait_for(lambda: state.cancelled_streams == 1 and state.active_streams == 0)
    assert state.active_requests == 0


def test_hang_until_client_gives_up(make_client: Callable[..., openai.OpenAI], state: FakeOpenAIState) -> None:
    client = make_client(timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=user("#fake:hang"))
    wait_for(lambda: state.cancelled_requests == 1 and state.active_requests == 0)
    assert state.cancelled_streams == 0


def test_slow_first_and_delay(client: openai.OpenAI) -> None:
    started = time.monotonic()
    chunks = list(client.chat.completions.create(model="m", messages=user("#fake:slow_first=0.2 #fake:delay=0.02"),
                                                 stream=True))
    assert time.monotonic() - started >= 0.2 + 0.02 * (len(chunks) - 1) * 0.9
