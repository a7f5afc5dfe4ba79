"""Upstream error text reaches clients without credentials or internal addresses, but with its reason.

A fake upstream on loopback answers every protocol's requests with errors that quote a masked key,
its own host:port, internal URLs and other credential-shaped strings; every surface that passes an
upstream's words on (chat in each protocol, streamed error events, /messages, count_tokens, image
generation, the channel test of the admin API and the CLI) must show the reason and none of those.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import anthropic
import openai
import pytest
from aiohttp import web

from tests.support.harness import Harness
from tests.support.processes import clean_env, cli
from tests.support.scenarios import customer
from tests.support.servers import ServerThread

CHANNEL_KEY = "sk-UPSTREAM-secret-0123"
REASON = "REASON-KEPT: the prompt is too long for this model"


def leak(host: str) -> str:
    """An error message as careless upstreams write them."""
    return (
        f"{REASON}. Incorrect API key provided: sk-UPSTR*****-123. Upstream {host} refused the call; "
        f"see http://{host}/v1/debug, http://10.1.2.3:8080/internal, http://[::1]:9000/x and http://upstream-svc:80/ "
        "(Authorization: Bearer abcDEF123456ghiJKL) key AIzaSyA1234567890abcdefghijKLMNOP, sk-ant-api03-AbCdEf123456, "
        "trace 0123456789abcdef0123456789abcdef01234567, x-api-key=ab12****89yz, QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY3ODkw."
    )


def forbidden(host: str) -> list[str]:
    return [
        CHANNEL_KEY,
        "sk-UPSTR",
        "*****",
        host,
        host.split(":")[0],
        "10.1.2.3",
        "[::1]",
        "upstream-svc",
        "abcDEF123456",
        "AIzaSy",
        "sk-ant-api03",
        "0123456789abcdef0123456789",
        "ab12",
        "QUJDREVGR0hJSktM",
    ]


def leaky_upstream() -> web.Application:
    async def openai_chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        message = leak(request.host)
        if body["messages"][-1].get("content") == "error in a 200":  # some upstreams answer errors with 200
            return web.json_response({"error": {"message": message, "type": "server_error"}})
        if body.get("stream"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            chunk = {
                "id": "c1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}],
            }
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await response.write(
                b"data: " + json.dumps({"error": {"message": message, "type": "server_error"}}).encode() + b"\n\n"
            )
            return response
        return web.json_response({"error": {"message": message, "type": "invalid_request_error", "code": None}}, status=400)

    async def anthropic_messages(request: web.Request) -> web.Response:
        return web.json_response(
            {"type": "error", "error": {"type": "invalid_request_error", "message": leak(request.host)}}, status=400
        )

    async def gemini(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"code": 400, "message": leak(request.host), "status": "INVALID_ARGUMENT"}}, status=400
        )

    async def ark_images(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "InvalidParameter", "message": leak(request.host)}}, status=400)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_post("/anthropic/v1/messages", anthropic_messages)
    app.router.add_post("/anthropic/v1/messages/count_tokens", anthropic_messages)
    app.router.add_post("/gemini/v1beta/models/{model}", gemini)
    app.router.add_post("/ark/api/v3/images/generations", ark_images)
    app.router.add_post("/ark/api/v3/contents/generations/tasks", ark_images)
    return app


@pytest.fixture(scope="module")
def leaky() -> Iterator[ServerThread]:
    server = ServerThread(leaky_upstream()).start()
    yield server
    server.stop()


@pytest.fixture
def env(gateway: Harness, leaky: ServerThread):
    gateway.channel("openai", f"{leaky.url}/v1", api_key=CHANNEL_KEY, name="leaky-openai")
    gateway.channel("anthropic", f"{leaky.url}/anthropic", api_key=CHANNEL_KEY, name="leaky-anthropic")
    gateway.channel("gemini", f"{leaky.url}/gemini", api_key=CHANNEL_KEY, name="leaky-gemini")
    gateway.channel("ark", f"{leaky.url}/ark/api/v3", api_key=CHANNEL_KEY, name="leaky-ark")
    cust = customer(gateway)
    return gateway, cust, f"127.0.0.1:{leaky.port}"


def assert_scrubbed(text: str, host: str) -> None:
    assert REASON in text, text
    for secret in forbidden(host):
        assert secret not in text, f"{secret!r} reached the client: {text}"


def post(url: str, key: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("model", ["openai/gpt-4.1", "claude-sonnet-4-6", "google/gemini-2.5-pro"])
def test_chat_errors_in_every_protocol(env, model: str):
    gw, cust, host = env
    status, text = post(f"{gw.base_url}/chat/completions", cust.key, {"model": model, "messages": MSG})
    assert status == 400, text
    assert_scrubbed(text, host)
    status, text = post(f"{gw.base_url}/messages", cust.key, {"model": model, "max_tokens": 10, "messages": MSG})
    assert status == 400, text
    assert json.loads(text)["type"] == "error"
    assert_scrubbed(text, host)


def test_a_streamed_error_event(env):
    gw, cust, host = env
    client = gw.client(cust.key)
    with pytest.raises(openai.APIError) as raised:
        for _ in client.chat.completions.create(model="openai/gpt-4.1", messages=MSG, stream=True):
            pass
    assert_scrubbed(str(raised.value.body or raised.value.message), host)


def test_a_streamed_error_event_on_messages(env):
    gw, cust, host = env
    client = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=cust.key, max_retries=0)
    try:
        with pytest.raises(anthropic.APIError) as raised:
            with client.messages.stream(model="openai/gpt-4.1", max_tokens=10, messages=MSG) as stream:
                for _ in stream:
                    pass
        assert_scrubbed(json.dumps(raised.value.body) + str(raised.value.message), host)
    finally:
        client.close()


def test_an_error_inside_a_200_answer(env):
    gw, cust, host = env
    body = {"model": "openai/gpt-4.1", "messages": [{"role": "user", "content": "error in a 200"}]}
    status, text = post(f"{gw.base_url}/chat/completions", cust.key, body)
    assert status == 502, text
    assert_scrubbed(text, host)


def test_count_tokens(env):
    gw, cust, host = env
    status, text = post(f"{gw.base_url}/messages/count_tokens", cust.key, {"model": "claude-sonnet-4-6", "messages": MSG})
    assert status == 400, text
    assert_scrubbed(text, host)


def test_image_generation(env):
    gw, cust, host = env
    status, text = post(
        f"{gw.base_url}/images/generations", cust.key, {"model": "bytedance/doubao-seedream-5.0", "prompt": "a cat"}
    )
    assert status == 400, text
    assert_scrubbed(text, host)


def test_video_submission(env):
    gw, cust, host = env
    body = {"model": "bytedance/doubao-seedance-2.0", "prompt": "a cat", "duration": 5}
    status, text = post(f"{gw.base_url}/videos/generations", cust.key, body)
    assert status == 400, text
    assert_scrubbed(text, host)


def test_channel_test_in_the_admin_api_and_the_cli(env, tmp_path: Path):
    gw, _, host = env
    gw.user("root@example.com", None, admin=True)
    admin_key = gw.key("root@example.com")
    status, text = post(f"{gw.server.url}/api/admin/channels/leaky-openai/test", admin_key, {})
    assert status == 200, text
    assert_scrubbed(text, host)
    cli_env = clean_env(tmp_path / "cli-home")
    cli_env.update(
        {"TOKENHUB_DATABASE_URL": gw.settings.database_url.replace("+aiosqlite", ""), "TOKENHUB_SECRET_KEY": "test-secret-key"}
    )
    done = cli(["channel", "test", "leaky-openai"], cli_env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_scrubbed(done.stdout + done.stderr, host)
