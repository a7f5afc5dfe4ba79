"""Streams that do not end well: the client leaves, the upstream breaks. Billing follows what was delivered."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import openai
import orjson
import pytest
from aiohttp import http_writer, web

from tests.conftest import UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.scenarios import MODEL, cost_nanos, customer, priced_model
from tests.support.servers import ServerThread
from tokenhub.simulator.openai import FakeOpenAIState


@pytest.fixture
def setup(gateway: Harness, upstream_url: str):
    priced_model(gateway, upstream_url)
    cust = customer(gateway)
    return gateway, cust, gateway.client(cust.key)



def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_client_disconnect_cancels_upstream_and_bills_what_was_delivered(setup, fake_openai: FakeOpenAIState):
    gw, cust, _ = setup
    url = urlsplit(gw.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "#fake:tokens=400 #fake:delay=0.01"}]}
    conn.request("POST", "/api/v1/chat/completions", json.dumps(body), {"Authorization": f"Bearer {cust.key}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    request_id = resp.getheader("x-request-id")
    received = b""
    while received.count(b"\n\n") < 20:
        received += resp.read1(4096)
    conn.sock.close()  # hang up mid-stream
    conn.close()

    wait_for(lambda: fake_openai.cancelled_streams >= 1)  # the upstream request was cancelled too
    wait_for(lambda: gw.request_row(request_id).state != "held")
    row = gw.request_row(request_id)
    assert row.status == "client_closed"
    assert row.estimated is True
    full = cost_nanos(row.prompt_tokens, 400)
    assert 0 < row.cost_nanos < full
    assert row.completion_tokens >= 19  # at least what the client had already received
    summary = gw.credits(cust.email)
    assert summary["held_nanos"] == 0
    assert summary["total_usage_nanos"] == row.cost_nanos
    assert gw.ledger_report().ok


@pytest.mark.parametrize(("directive", "status"), [("truncate", "truncated"), ("reset", "truncated"), ("malformed", "truncated"), ("error_mid", "upstream_error")])
def test_broken_stream_ends_with_an_error_event_and_bills_delivered_text(setup, directive: str, status: str):
    gw, cust, client = setup
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": f"#fake:tokens=30 #fake:{directive}"}], stream=True
    )
    request_id = raw.headers["x-request-id"]
    received = []
    with pytest.raises(openai.APIError):
        for chunk in raw.parse():
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert received, "some content arrived before the failure"
    gw.flush()
    row = gw.request_row(request_id)
    assert row.status == status
    assert row.estimated is True and row.cost_nanos > 0
    assert row.cost_nanos < cost_nanos(row.prompt_tokens, 30)
    assert gw.ledger_report().ok


def test_stream_without_any_usage_is_estimated_and_flagged(setup):
    gw, cust, client = setup
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "#fake:no_usage"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    final = chunks[-1]
    assert final.usage is not None and final.usage.model_extra.get("estimated") is True
    assert final.usage.completion_tokens > 0
    gw.flush()
    row = gw.request_row(raw.headers["x-request-id"])
    assert row.status == "ok" and row.estimated is True
    assert row.cost_nanos == cost_nanos(row.prompt_tokens, row.completion_tokens)


def test_upstream_failure_before_output_charges_nothing(setup):
    gw, cust, client = setup
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "#fake:tokens=0 #fake:reset"}], stream=True))
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 0
    assert gw.credits(cust.email)["held_nanos"] == 0


def _whole_stream_upstream() -> web.Application:
    """An OpenAI-protocol upstream that sends a short streamed answer in one write, as a fast model
    (or a buffering proxy before it) delivers a short reply: every event reaches the gateway in one read."""

    def chunk(choices: list[dict], usage: dict | None = None) -> bytes:
        body = {"id": "chatcmpl-whole", "object": "chat.completion.chunk", "created": 1767225600, "model": "upstream-gpt-test",
                "system_fingerprint": None, "choices": choices}  # fmt: skip
        if usage is not None:
            body["usage"] = usage
        return b"data: " + orjson.dumps(body) + b"\n\n"

    events = [
        chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]),
        chunk([{"index": 0, "delta": {"content": "Hello there."}, "logprobs": None, "finish_reason": None}]),
        chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]),
        chunk([], {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}),
        b"data: [DONE]\n\n",
    ]

    async def completions(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {UPSTREAM_KEY}":
            return web.json_response({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                                "param": None, "code": "invalid_api_key"}}, status=401)  # fmt: skip
        body = await request.json()
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        return web.Response(body=b"".join(events), content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


def test_an_answer_that_arrives_whole_leaves_in_one_write(gateway: Harness, monkeypatch):
    """A stream's last read leaves with its ending: a short answer read whole goes to the client in one
    socket write, headers, events, the usage with its cost, [DONE] and the chunked body's end together."""
    upstream = ServerThread(_whole_stream_upstream()).start()
    try:
        priced_model(gateway, f"{upstream.url}/v1")
        cust = customer(gateway)
        writes: list[bytes] = []
        port = gateway.server.port
        write, writelines = http_writer.StreamWriter._write, http_writer.StreamWriter._writelines

        def counted(self: http_writer.StreamWriter, data: bytes) -> None:
            if self.transport is not None and self.transport.get_extra_info("sockname")[1] == port:
                writes.append(bytes(data))

        monkeypatch.setattr(http_writer.StreamWriter, "_write", lambda self, chunk: (counted(self, chunk), write(self, chunk))[1])
        monkeypatch.setattr(
            http_writer.StreamWriter, "_writelines",
            lambda self, chunks: (counted(self, b"".join(chunks := tuple(chunks))), writelines(self, chunks))[1],
        )  # fmt: skip
        stream = gateway.client(cust.key).chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream.parse())
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there."
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
        assert len(writes) == 1, [w[:60] for w in writes]
        assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert writes[0].endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
        gateway.flush()
        row = gateway.request_row(stream.headers["x-request-id"])
        assert (row.status, row.completion_tokens, row.cost_nanos) == ("ok", 3, cost_nanos(9, 3))
    finally:
        upstream.stop()
