"""The fake Anthropic upstream, exercised over real HTTP with the real anthropic SDK."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import pytest

from tests.support.servers import ServerThread
from tokenhub.simulator.anthropic import STATE_KEY, FakeAnthropicState, create_app, sign_thinking

API_KEY = "sk-ant-test"
MODEL = "claude-sonnet-4-6"
THINKING = {"type": "enabled", "budget_tokens": 1024}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app(api_keys={API_KEY}, token_delay=0.0)).start()
    yield srv
    srv.stop()


@pytest.fixture
def state(server: ServerThread) -> FakeAnthropicState:
    st = server.app[STATE_KEY]
    assert st is server.app["state"]
    wait_for(lambda: st.active_requests == 0)  # let the previous test's aborted streams wind down
    st.reset()
    return st


@pytest.fixture
def base_url(server: ServerThread, state: FakeAnthropicState) -> str:
    return server.url


@pytest.fixture
def make_client(base_url: str) -> Iterator[Callable[..., anthropic.Anthropic]]:
    clients: list[anthropic.Anthropic] = []

    def make(api_key: str = API_KEY, **kwargs: Any) -> anthropic.Anthropic:
        kwargs.setdefault("timeout", 5.0)
        client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., anthropic.Anthropic]) -> anthropic.Anthropic:
    return make_client()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def create(client: anthropic.Anthropic, text: str, **kwargs: Any) -> Any:
    kwargs.setdefault("max_tokens", 256)
    return client.messages.create(model=MODEL, system="Be brief.", messages=user(text), **kwargs)


def raw_post(base_url: str, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    port = int(base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    if headers is None:
        headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        conn.request("POST", path, body=payload, headers={"content-type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_stream(base_url: str, text: str, **extra: Any) -> bytes:
    body = {"model": MODEL, "max_tokens": 256, "messages": user(text), "stream": True, **extra}
    status, headers, data = raw_post(base_url, "/v1/messages", body)
    assert status == 200, data
    assert headers["content-type"].startswith("text/event-stream")
    return data


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in raw.decode().replace("\r\n", "\n").split("\n\n"):
        if not frame:
            continue
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[6:])
        assert data["type"] == name_line[7:]
        events.append((name_line[7:], data))
    return events


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def tool_results(message: Any) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": b.id, "content": "18C"}
                                        for b in message.content if b.type == "tool_use"]}


# --------------------------------------------------------------------------- basics


def test_plain_message(client: anthropic.Anthropic, state: FakeAnthropicState) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=256, system="Be brief.",
                                                   messages=user("Say hi"))
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-limit"]
    message = raw.parse()
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello! This is a fake reply."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = message.usage
    # system "Be brief." (2 words) + user "Say hi" (3 + 2 words)
    assert (usage.input_tokens, usage.output_tokens) == (7, 6)
    assert usage.cache_read_input_tokens == 0 and usage.cache_creation_input_tokens == 0
    assert usage.service_tier == "standard"

    recorded = state.requests[-1]
    assert recorded.path == "/v1/messages"
    assert recorded.headers["Anthropic-Version"]
    assert recorded.json["messages"][0]["content"] == "Say hi"


def test_beta_query_models_and_count_tokens(client: anthropic.Anthropic, state: FakeAnthropicState) -> None:
    beta = client.beta.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
    assert beta.content[0].type == "text"
    assert MODEL in [m.id for m in client.models.list()]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")
    count = client.messages.count_tokens(model=MODEL, system="Be brief.", messages=user("Say hi #fake:whatever"),
                                         tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert count.input_tokens == 2 + 3 + 3 + 4  # system + message + tool name/description words
    assert state.requests[-1].path == "/v1/messages/count_tokens"


def test_auth_and_version_headers(base_url: str, make_client: Callable[..., anthropic.Anthropic]) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": user("hi")}
    assert raw_post(base_url, "/v1/messages", body)[0] == 200  # x-api-key works too
    status, headers, data = raw_post(base_url, "/v1/messages", body, {"x-api-key": API_KEY})
    error = json.loads(data)
    assert status == 400 and error["error"] == {"type": "invalid_request_error",
                                                "message": "anthropic-version: header is required"}
    assert error["type"] == "error" and error["request_id"] == headers["request-id"]
    status, _, data = raw_post(base_url, "/v1/messages", body, {"anthropic-version": "2023-06-01"})
    assert status == 401 and json.loads(data)["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError) as info:
        make_client(api_key="sk-wrong").messages.create(model=MODEL, max_tokens=10, messages=user("hi"))
    assert info.value.type == "authentication_error"
    status, _, data = raw_post(base_url, "/v1/nope", body)
    assert status == 404 and json.loads(data)["error"]["type"] == "not_found_error"


def test_open_auth_when_no_keys() -> None:
    srv = ServerThread(create_app(api_keys=None)).start()
    try:
        with anthropic.Anthropic(base_url=srv.url, api_key="anything", max_retries=0) as c:
            assert c.messages.create(model=MODEL, max_tokens=10, messages=user("hi")).content
    finally:
        srv.stop()


# --------------------------------------------------------------------------- streaming


def test_stream_accumulates_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=256, system="Be brief.",
                                messages=user("Say hi #fake:tokens=8")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello! This is a fake reply. Hello! This"
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2 + 3 + 3, 8)


def test_raw_stream_framing(base_url: str) -> None:
    raw = raw_stream(base_url, "hi")
    assert b"\r\n" not in raw and raw.endswith(b"\n\n")
    events = parse_sse(raw)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "ping"] + ["content_block_delta"] * 6 + [
        "content_block_stop", "message_delta", "message_stop"]
    assert b'data: {"type": "ping"}' in raw
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["stop_sequence"] is None
    assert start["usage"]["output_tokens"] == 1 and start["usage"]["input_tokens"] == 4
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert events[3][1]["delta"] == {"type": "text_delta", "text": "Hello! "}
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                              "output_tokens": 6}


def test_ping_and_crlf_streams(client: anthropic.Anthropic, base_url: str) -> None:
    for directive in ("#fake:ping", "#fake:crlf", "#fake:ping #fake:crlf"):
        with client.messages.stream(model=MODEL, max_tokens=64, messages=user(directive)) as stream:
            assert stream.get_final_text() == "Hello! This is a fake reply."
    raw = raw_stream(base_url, "#fake:ping #fake:crlf")
    assert b"\r\n\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    names = [name for name, _ in parse_sse(raw)]
    assert names.count("ping") > 10
    assert names[-1] == "message_stop"


# --------------------------------------------------------------------------- tools


def test_tools_stream_reconstructs_inputs(client: anthropic.Anthropic, base_url: str) -> None:
    with client.messages.stream(model=MODEL, max_tokens=256, messages=user("weather? #fake:tools"),
                                tools=[WEATHER_TOOL]) as stream:  # type: ignore[list-item]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    blocks = [b for b in final.content if b.type == "tool_use"]
    assert [b.name for b in blocks] == ["get_weather", "get_weather"]
    assert [b.input for b in blocks] == [{"city": "Paris"}, {"city": "Rome"}]
    assert blocks[0].id != blocks[1].id and blocks[0].id.startswith("toolu_")
    full = client.messages.create(model=MODEL, max_tokens=256, messages=user("weather? #fake:tools"))
    assert final.usage.output_tokens == full.usage.output_tokens

    events = parse_sse(raw_stream(base_url, "#fake:tools"))
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 0]
    assert fragments[0] == "" and len(fragments) > 3
    assert json.loads("".join(fragments)) == {"city": "Paris"}
    assert any(not f.startswith(("{", '"')) for f in fragments[1:])  # split mid-token


def test_tool_noargs_and_request_tool_name(client: anthropic.Anthropic, base_url: str) -> None:
    tools = [{"name": "now", "description": "Current time", "input_schema": {"type": "object"}}]
    with client.messages.stream(model=MODEL, max_tokens=64, messages=user("#fake:tool_noargs"),
                                tools=tools) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [("tool_use", "now", {})]  # type: ignore[union-attr]
    assert final.usage.output_tokens == 1
    events = parse_sse(raw_stream(base_url, "#fake:tool_noargs"))
    assert not any(n == "content_block_delta" for n, _ in events)
    message = client.messages.create(model=MODEL, max_tokens=64, messages=user("#fake:tools #fake:tokens=2"))
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]


def test_tool_loop_second_turn_accepted(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model=MODEL, max_tokens=64, messages=user("#fake:tools"),
                                   tools=[WEATHER_TOOL])  # type: ignore[list-item]
    history = user("weather?") + [first.to_param(), tool_results(first)]
    second = client.messages.create(model=MODEL, max_tokens=64, messages=history, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert second.stop_reason == "end_turn"


# --------------------------------------------------------------------------- thinking


def test_thinking_signature_round_trip(client: anthropic.Anthropic, state: FakeAnthropicState) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 2048, "thinking": THINKING, "tools": [WEATHER_TOOL]}
    first = client.messages.create(messages=user("weather? #fake:tools #fake:thinking=3"), **kwargs)
    assert [b.type for b in first.content] == ["thinking", "tool_use", "tool_use"]
    thinking = first.content[0]
    assert thinking.thinking == "Let me think"  # type: ignore[union-attr]
    assert thinking.signature == sign_thinking(state.signing_key, "Let me think")  # type: ignore[union-attr]
    assert thinking.signature in state.issued_signatures  # type: ignore[union-attr]
    # 3 thinking pieces + per tool_use 1 + its non-empty partial_json fragments (5 for Paris, 4 for Rome)
    assert first.usage.output_tokens == 3 + (1 + 5) + (1 + 4)

    history = user("weather?") + [first.to_param(), tool_results(first)]
    second = client.messages.create(messages=history, **kwargs)
    assert second.content[0].type == "thinking" and second.content[-1].type == "text"

    tampered = json.loads(json.dumps(history, default=lambda o: o.model_dump()))
    tampered[1]["content"][0]["thinking"] = "Let me cheat"
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(messages=tampered, **kwargs)
    assert info.value.api_message == "messages.1.content.0: Invalid `signature` in `thinking` block"

    stripped = json.loads(json.dumps(history, default=lambda o: o.model_dump()))
    del stripped[1]["content"][0]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(messages=stripped, **kwargs)
    assert (info.value.api_message or "").startswith(
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`.")
    # without thinking enabled the same stripped history is fine
    assert client.messages.create(model=MODEL, max_tokens=64, messages=stripped).content


def test_thinking_stream_and_redacted(client: anthropic.Anthropic, base_url: str) -> None:
    with client.messages.stream(model=MODEL, max_tokens=2048, thinking=THINKING,  # type: ignore[arg-type]
                                messages=user("#fake:thinking=4 #fake:redacted_thinking")) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["redacted_thinking", "thinking", "text"]
    assert final.content[1].thinking == "Let me think about"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 1 + 4 + 6
    history = user("hi") + [final.to_param(), {"role": "user", "content": "again"}]
    assert client.messages.create(model=MODEL, max_tokens=2048, thinking=THINKING, messages=history).content  # type: ignore[arg-type]
    bad = json.loads(json.dumps(history, default=lambda o: o.model_dump()))
    bad[1]["content"][0]["data"] = "Zm9v"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=2048, messages=bad)

    body = {"thinking": THINKING, "max_tokens": 2048}
    events = parse_sse(raw_stream(base_url, "#fake:thinking=2", **body))
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [d["delta"]["type"] for n, d in events if n == "content_block_delta" and d["index"] == 0]
    assert deltas == ["thinking_delta", "thinking_delta", "signature_delta"]
    # default thinking block when thinking is enabled; ignored when it is not
    assert client.messages.create(model=MODEL, max_tokens=2048, thinking=THINKING,  # type: ignore[arg-type]
                                  messages=user("hi")).content[0].type == "thinking"
    plain = client.messages.create(model=MODEL, max_tokens=64, messages=user("#fake:thinking=3"))
    assert [b.type for b in plain.content] == ["text"]


# --------------------------------------------------------------------------- stop reasons and usage


def test_stop_reasons(client: anthropic.Anthropic) -> None:
    assert create(client, "#fake:max_tokens").stop_reason == "max_tokens"
    stopped = create(client, "#fake:stop_sequence", stop_sequences=["END", "STOP"])
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "END")
    refused = create(client, "#fake:refusal")
    assert refused.stop_reason == "refusal" and refused.stop_details and refused.stop_details.type == "refusal"
    assert create(client, "#fake:pause_turn").stop_reason == "pause_turn"
    capped = create(client, "hi", max_tokens=3)
    assert capped.stop_reason == "max_tokens" and capped.usage.output_tokens == 3
    assert capped.content[0].text == "Hello! This is "  # type: ignore[union-attr]
    with client.messages.stream(model=MODEL, max_tokens=256, messages=user("#fake:stop_sequence"),
                                stop_sequences=["END"]) as stream:
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")


def test_usage_with_cache_fields(client: anthropic.Anthropic, base_url: str) -> None:
    system = [{"type": "text", "text": "You are a very terse helper bot.", "cache_control": {"type": "ephemeral"}}]
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "system": system,
                              "messages": user("hello there #fake:cache_read=4 #fake:cache_write=2")}
    full = client.messages.create(**kwargs)
    total = 7 + 3 + 4
    usage = full.usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (4, 2)
    assert usage.input_tokens == total - 6
    assert usage.cache_creation and usage.cache_creation.ephemeral_5m_input_tokens == 2
    with client.messages.stream(**kwargs) as stream:
        streamed = stream.get_final_message()
    assert streamed.usage.model_dump() == usage.model_dump()
    assert client.messages.count_tokens(model=MODEL, system=system, messages=kwargs["messages"]).input_tokens == total

    system[0]["cache_control"]["ttl"] = "1h"
    hour = client.messages.create(**kwargs).usage.cache_creation
    assert hour and (hour.ephemeral_5m_input_tokens, hour.ephemeral_1h_input_tokens) == (0, 2)
    events = parse_sse(raw_stream(base_url, "#fake:cache_read=99"))
    assert events[-2][1]["usage"]["cache_read_input_tokens"] == 4 and events[-2][1]["usage"]["input_tokens"] == 0


# --------------------------------------------------------------------------- server tools and malformed usage

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}


def test_web_search_blocks_and_usage(client: anthropic.Anthropic, base_url: str) -> None:
    tools = [{**WEB_SEARCH, "max_uses": 2}]
    message = client.messages.create(model=MODEL, max_tokens=256, messages=user("news? #fake:web_search=3"), tools=tools)
    kinds = [b.type for b in message.content]
    assert kinds == ["server_tool_use", "web_search_tool_result"] * 3 + ["text"]
    uses = [b for b in message.content if b.type == "server_tool_use"]
    results = [b for b in message.content if b.type == "web_search_tool_result"]
    assert [u.name for u in uses] == ["web_search"] * 3 and uses[0].input == {"query": "fake search 1"}
    assert [r.tool_use_id for r in results] == [u.id for u in uses] and all(u.id.startswith("srvtoolu_") for u in uses)
    assert results[0].content[0].type == "web_search_result"
    assert results[2].content.type == "web_search_tool_result_error" and results[2].content.error_code == "max_uses_exceeded"
    usage = message.usage.server_tool_use
    assert usage is not None and (usage.web_search_requests, usage.web_fetch_requests) == (2, 0)  # only those run
    # a server_tool_use block costs like tool_use: 1 + its 6 partial_json fragments (26 characters); results cost nothing
    assert message.usage.output_tokens == 3 * 7 + 6

    with client.messages.stream(model=MODEL, max_tokens=256, messages=user("news? #fake:web_search=3"), tools=tools) as stream:
        streamed = stream.get_final_message()
    assert [b.type for b in streamed.content] == kinds and streamed.usage.server_tool_use.web_search_requests == 2
    assert streamed.usage.output_tokens == message.usage.output_tokens
    events = parse_sse(raw_stream(base_url, "news? #fake:web_search=1", tools=[WEB_SEARCH]))
    assert events[0][1]["message"]["usage"]["server_tool_use"] == {"web_search_requests": 0, "web_fetch_requests": 0}
    assert events[-2][1]["usage"]["server_tool_use"] == {"web_search_requests": 1, "web_fetch_requests": 0}
    plain = client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"))
    assert plain.usage.server_tool_use is None  # no server tool offered: no server_tool_use


def test_web_fetch_blocks_and_max_uses_validation(client: anthropic.Anthropic) -> None:
    tools = [{"type": "web_fetch_20250910", "name": "web_fetch"}]
    message = client.messages.create(model=MODEL, max_tokens=256, messages=user("read it #fake:web_fetch=1"), tools=tools)
    assert [b.type for b in message.content] == ["server_tool_use", "web_fetch_tool_result", "text"]
    assert message.content[1].content.type == "web_fetch_result"
    assert message.usage.server_tool_use.web_fetch_requests == 1
    for bad, words in ((0, "greater than or equal to 1"), ("3", "valid integer")):
        with pytest.raises(anthropic.BadRequestError, match=words):
            client.messages.create(model=MODEL, max_tokens=64, messages=user("hi"), tools=[{**WEB_SEARCH, "max_uses": bad}])


@pytest.mark.parametrize(("kind", "value"), [("negative", -7), ("float", 12.5), ("string", "12")])
def test_bad_usage_directive(base_url: str, kind: str, value: Any) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": user(f"hi #fake:bad_usage={kind}")}
    status, _, data = raw_post(base_url, "/v1/messages", body)
    assert status == 200 and json.loads(data)["usage"]["output_tokens"] == value
    events = parse_sse(raw_stream(base_url, f"hi #fake:bad_usage={kind}"))
    assert events[-2][0] == "message_delta" and events[-2][1]["usage"]["output_tokens"] == value


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "exc_type", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.RequestTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_error_statuses(client: anthropic.Anthropic, status: int, exc_type: type[anthropic.APIStatusError],
                        error_type: str) -> None:
    with pytest.raises(exc_type) as info:
        client.messages.create(model=MODEL, max_tokens=64, messages=user(f"#fake:status={status}"), stream=True)
    err = info.value
    assert err.status_code == status and err.type == error_type
    assert isinstance(err.body, dict) and err.body["type"] == "error"
    assert err.request_id and err.request_id == err.body["request_id"]
    if status == 429:
        assert err.response.headers["retry-after"] == "1"
        assert err.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert err.response.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    if status == 529:
        assert isinstance(err, anthropic.InternalServerError)


def test_retry_after_directive(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as info:
        create(client, "#fake:status=529 #fake:retry_after=7")
    assert info.value.response.headers["retry-after"] == "7"


def _tool_turns(tool_id: str = "toolu_01A", result_id: str | None = None, lead_text: bool = False) -> list[dict[str, Any]]:
    result = [{"type": "tool_result", "tool_use_id": result_id or tool_id, "content": "ok"}]
    content = ([{"type": "text", "text": "here"}] + result) if lead_text else result
    return user("go") + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {}}]},
        {"role": "user", "content": content},
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role: Input should be 'user' or 'assistant'"),
        ({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "x"}]},
         "messages.0.role: Input should be 'user' or 'assistant'"),
        ({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "x"}]},
         'messages: first message must use the "user" role'),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
         "messages: text content blocks must be non-empty"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "  \n"}]}]},
         "messages: text content blocks must contain non-whitespace text"),
        ({"messages": [{"role": "user", "content": ""}]},
         "messages.0: all messages must have non-empty content except for the optional final assistant message"),
        ({"messages": _tool_turns()[:2]},
         "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01A. "
         "Each `tool_use` block must have a corresponding `tool_result` block in the next message."),
        ({"messages": _tool_turns(lead_text=True)}, "messages.1: `tool_use` ids were found without"),
        ({"messages": _tool_turns(result_id="toolu_01B")}, "messages.1: `tool_use` ids were found without"),
        ({"messages": user("go") + [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_X", "content": "ok"}]}]},
         "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_X."),
        ({"messages": _tool_turns(tool_id="call.1:x")},
         "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"),
        ({"extra_body": {"temperature": 1.5}}, "temperature: range: 0..1"),
        ({"thinking": {"type": "enabled", "budget_tokens": 512}},
         "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}},
         "`max_tokens` must be greater than `thinking.budget_tokens`."),
        ({"thinking": THINKING, "max_tokens": 2048, "tools": [WEATHER_TOOL], "tool_choice": {"type": "any"}},
         "Thinking may not be enabled when tool_choice forces tool use."),
        ({"thinking": THINKING, "max_tokens": 2048, "tool_choice": {"type": "tool", "name": "get_weather"},
          "tools": [WEATHER_TOOL]}, "Thinking may not be enabled when tool_choice forces tool use."),
        ({"thinking": THINKING, "max_tokens": 2048, "extra_body": {"temperature": 0.2}},
         "`temperature` may only be set to 1 when thinking is enabled."),
        ({"thinking": THINKING, "max_tokens": 2048, "messages": _tool_turns()},
         "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`."),
        ({"messages": user("hi") + [{"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "EqQBCgIYAhIMforged"}]},
            {"role": "user", "content": "go on"}]},
         "messages.1.content.0: Invalid `signature` in `thinking` block"),
        ({"messages": user("#fake:nope")}, "Unknown fake directive '#fake:nope'."),
    ],
)
def test_validations(client: anthropic.Anthropic, overrides: dict[str, Any], message: str) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 1024, "messages": user("hi"), **overrides}
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(**kwargs)
    assert info.value.type == "invalid_request_error"
    assert (info.value.api_message or "").startswith(message)


def test_accepted_shapes(client: anthropic.Anthropic, make_client: Callable[..., anthropic.Anthropic],
                         base_url: str) -> None:
    merged = [{"role": "user", "content": "one"}, {"role": "user", "content": "two"},
              {"role": "assistant", "content": ""}, {"role": "assistant", "content": "ok"},
              {"role": "user", "content": [{"type": "text", "text": "three", "cache_control": {"type": "ephemeral"}}]}]
    assert client.messages.create(model=MODEL, max_tokens=64, messages=merged).content
    assert client.messages.create(model=MODEL, max_tokens=64, messages=_tool_turns()).content
    assert client.messages.create(model=MODEL, max_tokens=64, messages=user("#fake:tokens=0")).content == []
    body = {"model": MODEL, "messages": user("hi")}
    status, _, data = raw_post(base_url, "/v1/messages", body)
    assert status == 400 and json.loads(data)["error"]["message"] == "max_tokens: Field required"
    status, _, data = raw_post(base_url, "/v1/messages", b"{not json")
    assert status == 400 and json.loads(data)["error"]["type"] == "invalid_request_error"
    srv = ServerThread(create_app(api_keys=None, allow_system_role=True)).start()
    try:
        with anthropic.Anthropic(base_url=srv.url, api_key="x", max_retries=0) as c:
            mid_system = user("a") + [{"role": "system", "content": "be nice"}, {"role": "user", "content": "b"}]
            assert c.messages.create(model=MODEL, max_tokens=64, messages=mid_system).content  # type: ignore[arg-type]
    finally:
        srv.stop()


def test_error_mid_stream(client: anthropic.Anthropic, base_url: str) -> None:
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model=MODEL, max_tokens=256, messages=user("#fake:error_mid #fake:tokens=12")) as s:
            for text in s.text_stream:
                received.append(text)
    assert "".join(received)  # some content arrived first
    assert info.value.type == "overloaded_error"
    assert info.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    events = parse_sse(raw_stream(base_url, "#fake:error_mid"))
    assert events[-1][0] == "error" and "message_stop" not in [n for n, _ in events]


def test_reset_and_truncate(client: anthropic.Anthropic, state: FakeAnthropicState, base_url: str) -> None:
    with pytest.raises(Exception) as info:  # noqa: B017 - SDK 2.x lets httpx2.RemoteProtocolError escape the stream
        with client.messages.stream(model=MODEL, max_tokens=256, messages=user("#fake:reset #fake:tokens=40")) as s:
            s.until_done()
    assert not isinstance(info.value, anthropic.APIStatusError)
    wait_for(lambda: state.active_streams == 0)
    assert state.cancelled_streams == 0  # the server hung up, not the client
    events = parse_sse(raw_stream(base_url, "#fake:truncate #fake:tokens=10"))
    names = [n for n, _ in events]
    assert names[0] == "message_start" and "content_block_delta" in names
    assert not {"message_delta", "message_stop"} & set(names)


# --------------------------------------------------------------------------- timing and cancellation


def test_client_disconnect_cancels_stream(client: anthropic.Anthropic, state: FakeAnthropicState) -> None:
    stream = client.messages.create(model=MODEL, max_tokens=1024, stream=True,
                                    messages=user("#fake:tokens=500 #fake:delay=0.01"))
    for _, _event in zip(range(4), stream, strict=False):
        pass
    assert state.active_streams == 1
    stream.close()
    wait_for(lambda: state.cancelled_streams == 1 and state.active_streams == 0)
    assert state.active_requests == 0 and state.cancelled_requests == 1


def test_hang_until_client_gives_up(make_client: Callable[..., anthropic.Anthropic],
                                    state: FakeAnthropicState) -> None:
    with pytest.raises(anthropic.APITimeoutError):
        make_client(timeout=0.3).messages.create(model=MODEL, max_tokens=64, messages=user("#fake:hang"))
    wait_for(lambda: state.cancelled_requests == 1 and state.active_requests == 0)
    assert state.cancelled_streams == 0


def test_slow_first_and_delay(client: anthropic.Anthropic) -> None:
    started = time.monotonic()
    events = list(client.messages.create(model=MODEL, max_tokens=64, stream=True,
                                         messages=user("#fake:slow_first=0.2 #fake:delay=0.01")))
    assert len(events) == 11  # the SDK drops the ping
    assert time.monotonic() - started >= 0.2 + 0.01 * (len(events) - 1) * 0.9
