"""The operator simulator: every fake under its prefix on one port, with operator-level faults.

Chat protocols are driven with the official SDKs (openai, anthropic, google-genai), the
video ones with raw HTTP; one smoke test runs ``tokenhub simulate`` as a subprocess.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anthropic
import jwt
import openai
import pytest
from click.testing import CliRunner
from google import genai
from google.genai import types

from tests.support.harness import Harness
from tests.support.processes import free_port
from tests.support.servers import ServerThread
from tokenhub.cli import main
from tokenhub.simulator.server import (
    KEEP_REQUESTS,
    STATS_KEY,
    SUBAPPS_KEY,
    SimulatorConfig,
    base_urls,
    channel_commands,
    create_app,
    parse_error_rates,
    parse_faults,
)

API_KEY = "sk-sim"
ACCESS_KEY, SECRET_KEY = "ak-sim", "sk-sim-secret-0123456789abcdef0123456789"
KEYS = (API_KEY, f"{ACCESS_KEY}:{SECRET_KEY}")
HELLO = [{"role": "user", "content": "Hello"}]
REPLY = "Hello! This is a fake reply."
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


def kling_token() -> str:
    now = int(time.time())
    return jwt.encode({"iss": ACCESS_KEY, "exp": now + 600, "nbf": now - 5}, SECRET_KEY, algorithm="HS256",
                      headers={"alg": "HS256", "typ": "JWT"})


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


class Http:
    """A tiny blocking HTTP client (http.client) rooted at a base URL."""

    def __init__(self, base_url: str, timeout: float = 5) -> None:
        self.base_url = base_url
        self.timeout = timeout

    def request(self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None) -> Response:
        url = urlsplit(self.base_url + path if path.startswith("/") else path)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=self.timeout)
        try:
            payload = json.dumps(json_body).encode() if json_body is not None else None
            sent = {"Content-Type": "application/json", **(headers or {})} if payload is not None else headers or {}
            conn.request(method, url.path + (f"?{url.query}" if url.query else ""), body=payload, headers=sent)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, json: Any, headers: dict[str, str] | None = None) -> Response:  # noqa: A002
        return self.request("POST", path, json, headers)


def get(url: str) -> Response:
    return Http("").get(url)


@pytest.fixture
def start() -> Iterator[Callable[[SimulatorConfig], ServerThread]]:
    servers: list[ServerThread] = []

    def run(config: SimulatorConfig) -> ServerThread:
        server = ServerThread(create_app(config)).start()
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def sim() -> Iterator[ServerThread]:
    server = ServerThread(create_app(SimulatorConfig(keys=KEYS))).start()
    yield server
    server.stop()


@pytest.fixture
def api(sim: ServerThread) -> Http:
    return Http(sim.url)


# --------------------------------------------------------------------------- every protocol under its prefix


def test_base_urls_and_channel_commands() -> None:
    urls = dict(base_urls("http://h:9100"))
    assert urls == {
        "openai": "http://h:9100/openai/v1",
        "anthropic": "http://h:9100/anthropic",
        "gemini": "http://h:9100/gemini",
        "ark": "http://h:9100/ark/api/v3",
        "kling": "http://h:9100/kling",
        "dashscope": "http://h:9100/dashscope/api/v1",
    }
    commands = channel_commands("http://h:9100", SimulatorConfig(keys=KEYS))
    assert "tokenhub channel add openai --name sim-openai --base-url http://h:9100/openai/v1 --api-key sk-sim" in commands
    assert any(c.startswith("tokenhub channel add kling ") and c.endswith(f"--api-key {ACCESS_KEY}:{SECRET_KEY}")
               for c in commands)


def test_openai_sdk_under_prefix(sim: ServerThread) -> None:
    with openai.OpenAI(base_url=f"{sim.url}/openai/v1", api_key=API_KEY, max_retries=0, timeout=5) as client:
        reply = client.chat.completions.create(model="gpt-6.2-sol", messages=HELLO)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "Hello! This is a fake reply."
        stream = client.chat.completions.create(model="gpt-4.1", messages=HELLO, stream=True,  # type: ignore[arg-type]
                                                stream_options={"include_usage": True})
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! This is a fake reply."
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
        assert "gpt-6.2-sol" in {m.id for m in client.models.list()}  # the catalog's models are served
        with pytest.raises(openai.APIStatusError) as info:  # per-prompt directives still work
            client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "#fake:status=503"}])
        assert info.value.status_code == 503
    with openai.OpenAI(base_url=f"{sim.url}/openai/v1", api_key="wrong", max_retries=0, timeout=5) as client:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4.1", messages=HELLO)  # type: ignore[arg-type]


def test_anthropic_sdk_under_prefix(sim: ServerThread) -> None:
    with anthropic.Anthropic(base_url=f"{sim.url}/anthropic", api_key=API_KEY, max_retries=0, timeout=5) as client:
        reply = client.messages.create(model="claude-opus-5-5", max_tokens=100, messages=HELLO)  # type: ignore[arg-type]
        assert reply.content[0].text == "Hello! This is a fake reply."  # type: ignore[union-attr]
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO) as stream:  # type: ignore[arg-type]
            assert "".join(stream.text_stream) == "Hello! This is a fake reply."
            assert stream.get_final_message().usage.output_tokens == 6
        assert client.messages.count_tokens(model="claude-sonnet-4-6", messages=HELLO).input_tokens > 0  # type: ignore[arg-type]


def test_gemini_under_prefix(sim: ServerThread, api: Http) -> None:
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(
        base_url=f"{sim.url}/gemini", api_version="v1beta", timeout=5000))
    try:
        assert client.models.generate_content(model="gemini-3.5-flash", contents="Hello").text == REPLY  # a catalog model
        stream = client.models.generate_content_stream(model="gemini-2.5-pro", contents="Hello")
        assert "".join(chunk.text or "" for chunk in stream) == REPLY
    finally:
        client.close()
    wrong = api.post("/gemini/v1beta/models/gemini-2.5-pro:generateContent", json=GEMINI_BODY,
                      headers={"x-goog-api-key": "wrong"})
    assert wrong.status_code == 400 and wrong.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_ark_under_prefix(api: Http) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": "doubao-seedance-2-0-260128", "content": [{"type": "text", "text": "A fox"}]}
    created = api.post("/ark/api/v3/contents/generations/tasks", json=body, headers=auth)
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    statuses = [api.get(f"/ark/api/v3/contents/generations/tasks/{task_id}", headers=auth).json() for _ in range(4)]
    assert [t["status"] for t in statuses] == ["queued", "running", "running", "succeeded"]
    video_url = statuses[-1]["content"]["video_url"]
    assert video_url == f"{api.base_url}/ark/videos/{task_id}.mp4"
    assert get(video_url).content[4:8] == b"ftyp"
    missing = api.get("/ark/api/v3/nothing-here", headers=auth)  # the fake's own 404 body under the prefix
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"
    assert api.post("/ark/api/v3/contents/generations/tasks", json=body).status_code == 401


def test_kling_under_prefix(api: Http) -> None:
    auth = {"Authorization": f"Bearer {kling_token()}"}
    body = {"model_name": "kling-v3", "prompt": "A fox in the snow", "duration": "5", "mode": "std"}
    created = api.post("/kling/v1/videos/text2video", json=body, headers=auth)
    assert created.status_code == 200 and created.json()["code"] == 0, created.text
    task_id = created.json()["data"]["task_id"]
    polls = [api.get(f"/kling/v1/videos/text2video/{task_id}", headers=auth).json()["data"] for _ in range(3)]
    assert polls[-1]["task_status"] == "succeed"
    video_url = polls[-1]["task_result"]["videos"][0]["url"]
    assert video_url.startswith(f"{api.base_url}" + "/kling/fake-media/kling/")
    assert get(video_url).content[4:8] == b"ftyp"
    assert api.post("/kling/v1/videos/text2video", json=body,
                     headers={"Authorization": "Bearer not.a.jwt"}).json()["code"] == 1002


def test_dashscope_under_prefix(api: Http) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "X-DashScope-Async": "enable"}
    body = {"model": "wan2.2-t2v-plus", "input": {"prompt": "A fox"}}
    created = api.post("/dashscope/api/v1/services/aigc/video-generation/video-synthesis", json=body, headers=headers)
    assert created.status_code == 200, created.text
    task_id = created.json()["output"]["task_id"]
    polls = [api.get(f"/dashscope/api/v1/tasks/{task_id}", headers=headers).json()["output"] for _ in range(4)]
    assert [p["task_status"] for p in polls] == ["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"]
    video_url = polls[-1]["video_url"]
    assert video_url.startswith(f"{api.base_url}" + f"/dashscope/dashscope-result/{task_id}.mp4?")
    assert get(video_url).status_code == 200


# --------------------------------------------------------------------------- operator-level faults

ERROR_CALLS: dict[str, tuple[str, str, dict[str, Any], dict[str, str]]] = {
    "openai": ("POST", "/openai/v1/chat/completions", {"model": "gpt-4.1", "messages": HELLO}, {}),
    "anthropic": ("POST", "/anthropic/v1/messages", {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": HELLO},
                  {"anthropic-version": "2023-06-01"}),
    "gemini": ("POST", "/gemini/v1beta/models/gemini-2.5-pro:generateContent", GEMINI_BODY, {}),
    "ark": ("GET", "/ark/api/v3/contents/generations/tasks", {}, {}),
    "kling": ("GET", "/kling/v1/videos/text2video", {}, {}),
    "dashscope": ("GET", "/dashscope/api/v1/tasks/some-task", {}, {}),
}


def call(client: Http, name: str) -> Response:
    method, path, body, headers = ERROR_CALLS[name]
    return client.request(method, path, body or None, headers)


def test_error_rate_one_answers_every_protocol_in_its_own_error_shape(start: Callable[..., ServerThread]) -> None:
    server = start(SimulatorConfig(error_rates=((503, 1.0),), seed=1))
    client = Http(server.url)
    responses = {name: call(client, name) for name in ERROR_CALLS}
    for name, response in responses.items():
        assert response.status_code == 503, (name, response.text)
    bodies = {name: response.json() for name, response in responses.items()}
    assert bodies["openai"]["error"]["code"] == "service_unavailable"
    assert bodies["openai"]["error"]["type"] == "server_error"
    assert bodies["anthropic"]["type"] == "error" and bodies["anthropic"]["error"]["type"] == "api_error"
    assert bodies["gemini"]["error"] == {"code": 503, "message": "The model is overloaded. Please try again later.",
                                         "status": "UNAVAILABLE"}
    assert bodies["ark"]["error"]["code"] == "ServiceUnavailable"
    assert bodies["ark"]["error"]["message"].endswith("Request id: " + responses["ark"].headers["x-request-id"])
    assert bodies["kling"]["code"] == 5001 and "data" not in bodies["kling"]
    assert bodies["dashscope"]["code"] == "ServiceUnavailable" and "request_id" in bodies["dashscope"]


def expected_statuses(seed: int, name: str, rates: tuple[tuple[int, float], ...], count: int) -> list[int]:
    """The documented draw: one rng.random() per request; the first entry whose running sum exceeds it."""
    rng = random.Random(f"{seed}:{name}")
    out = []
    for _ in range(count):
        draw, total, status = rng.random(), 0.0, 200
        for code, fraction in rates:
            total += fraction
            if draw < total:
                status = code
                break
        out.append(status)
    return out


def test_seeded_error_rates_replay_exactly(start: Callable[..., ServerThread]) -> None:
    rates = ((503, 0.3), (429, 0.2))
    server = start(SimulatorConfig(error_rates=rates, seed=42))
    client = Http(server.url)
    openai_responses = [call(client, "openai") for _ in range(30)]
    gemini_statuses = [call(client, "gemini").status_code for _ in range(10)]
    statuses = [r.status_code for r in openai_responses]
    assert statuses == expected_statuses(42, "openai", rates, 30)
    assert {200, 429, 503} <= set(statuses)
    assert gemini_statuses == expected_statuses(42, "gemini", rates, 10)  # each prefix draws on its own
    limited = next(r for r in openai_responses if r.status_code == 429)
    assert limited.json()["error"]["code"] == "rate_limit_exceeded" and limited.headers["retry-after"] == "1"


def test_media_downloads_are_not_failed(start: Callable[..., ServerThread]) -> None:
    server = start(SimulatorConfig(error_rates=((500, 1.0),)))
    assert get(f"{server.url}/ark/videos/cgt-x.mp4").status_code == 404  # the fake's own answer, not a 500


def stream_request(client: Http, **extra: Any) -> Response:
    body = {"model": "gpt-4.1", "messages": HELLO, "stream": True, **extra}
    return client.post("/openai/v1/chat/completions", json=body)


def test_faults_break_streams(start: Callable[..., ServerThread]) -> None:
    truncate = start(SimulatorConfig(faults=(("truncate", 1.0),)))
    client = Http(truncate.url)
    text = stream_request(client).text
    assert text.startswith("data: ") and "[DONE]" not in text and "finish_reason\":\"stop" not in text
    # Anthropic has truncate too; the stream ends without message_stop
    response = client.post("/anthropic/v1/messages", headers={"anthropic-version": "2023-06-01"},
                           json={"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": HELLO, "stream": True})
    assert "event: message_start" in response.text and "message_stop" not in response.text
    # non-generation requests are left alone
    assert client.get("/openai/v1/models").status_code == 200

    reset = start(SimulatorConfig(faults=(("reset", 1.0),)))
    with openai.OpenAI(base_url=f"{reset.url}/openai/v1", api_key="x", max_retries=0, timeout=5) as sdk:
        with pytest.raises(openai.APIConnectionError):
            list(sdk.chat.completions.create(model="gpt-4.1", messages=HELLO, stream=True))  # type: ignore[arg-type]

    malformed = start(SimulatorConfig(faults=(("malformed", 1.0),)))
    client = Http(malformed.url)
    assert '"choices":[{"ind\n' in stream_request(client).text
    anthropic_stream = client.post("/anthropic/v1/messages", headers={"anthropic-version": "2023-06-01"},
                                   json={"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": HELLO,
                                         "stream": True})
    assert "message_stop" in anthropic_stream.text  # no malformed directive there: served normally

    stall = start(SimulatorConfig(faults=(("stall", 1.0),)))
    conn = http.client.HTTPConnection("127.0.0.1", stall.port, timeout=0.4)
    try:
        conn.request("POST", "/openai/v1/chat/completions", body=json.dumps(
            {"model": "gpt-4.1", "messages": HELLO, "stream": True}), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        received = b""
        with pytest.raises(TimeoutError):
            while piece := response.read1(65536):
                received += piece
        assert received.count(b"data: ") == 1  # the first event, then silence with the connection open
    finally:
        conn.close()


def test_latency_and_token_rate(start: Callable[..., ServerThread]) -> None:
    server = start(SimulatorConfig(latency=0.25, token_rate=40))
    client = Http(server.url)
    began = time.monotonic()
    assert client.get("/kling/v1/videos/text2video").status_code == 200
    assert time.monotonic() - began >= 0.2
    began = time.monotonic()
    text = stream_request(client).text
    elapsed = time.monotonic() - began
    events = text.count("data: ")  # role + 6 pieces + finish + [DONE], 1/40 s apart after the first
    assert elapsed >= 0.2 + (events - 1) * 0.025 * 0.8


def test_recorded_requests_are_bounded(start: Callable[..., ServerThread]) -> None:
    server = start(SimulatorConfig())
    state = server.app[SUBAPPS_KEY]["openai"]["state"]
    state.requests.extend([None] * (KEEP_REQUESTS + 5))
    get(f"{server.url}/openai/v1/models")
    assert len(state.requests) == KEEP_REQUESTS


# --------------------------------------------------------------------------- configuration and the CLI


def test_parsing_fault_tables() -> None:
    assert parse_error_rates("503=0.1, 429=0.05") == ((503, 0.1), (429, 0.05))
    assert parse_faults("reset=0.1,stall=0.2") == (("reset", 0.1), ("stall", 0.2))
    assert parse_error_rates("") == () and parse_faults("") == ()
    for bad in ("503", "200=0.1", "abc=0.1", "503=1.5", "503=0.6,429=0.6", "503=x"):
        with pytest.raises(ValueError):
            parse_error_rates(bad)
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("explode=0.1")
    result = CliRunner().invoke(main, ["simulate", "--error-rate", "503=2"])
    assert result.exit_code == 2 and "between 0 and 1" in result.output


def test_cli_smoke() -> None:
    port = free_port()
    env = {**os.environ, "TOKENHUB_SIMULATOR_ERROR_RATE": "429=1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenhub", "simulate", "--port", str(port), "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(17)]
        assert f"http://127.0.0.1:{port}/dashscope/api/v1" in "".join(banner)
        assert any(f"tokenhub channel add anthropic --name sim-anthropic --base-url http://127.0.0.1:{port}/anthropic"
                   in line for line in banner)
        deadline = time.monotonic() + 10
        while True:
            try:
                response = get(f"http://127.0.0.1:{port}/openai/v1/models")
                break
            except OSError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.05)
        assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limit_exceeded"
        assert json.loads(get(f"http://127.0.0.1:{port}/").text)["base_urls"]["gemini"].endswith("/gemini")
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_failover_rehearsal_through_the_gateway(start: Callable[..., ServerThread], gateway: Harness) -> None:
    """The README's rehearsal: the preferred channel's simulator answers 503, the backup answers."""
    failing = start(SimulatorConfig(error_rates=((503, 1.0),)))
    healthy = start(SimulatorConfig())
    gateway.channel("deepseek", f"{failing.url}/openai/v1", api_key="sk-simulator", name="primary", priority=1)
    gateway.channel("deepseek", f"{healthy.url}/openai/v1", api_key="sk-simulator", name="backup")
    gateway.user("ops@example.com")
    client = gateway.client(gateway.key("ops@example.com"), timeout=10)
    reply = client.chat.completions.create(model="deepseek/deepseek-v4-flash", messages=HELLO)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == REPLY
    assert failing.app[SUBAPPS_KEY]["openai"][STATS_KEY].errors == {503: 1}
    assert healthy.app[SUBAPPS_KEY]["openai"][STATS_KEY].requests == 1
    stats = json.loads(get(f"{failing.url}/").text)["stats"]
    assert stats["openai"] == {"requests": 1, "errors": {"503": 1}, "faults": {}}
