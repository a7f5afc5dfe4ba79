"""Video generation tasks through the public API, against the fake Ark, Kling and DashScope servers."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
from aiohttp import web

from tests.conftest import KLING_AK, KLING_SK, UPSTREAM_KEY
from tests.support.harness import Harness
from tests.support.scenarios import customer
from tests.support.servers import ServerThread
from tokenhub.money import format_usd, usd_to_nanos

PROVIDERS = {
    # name: (channel provider, base path on the fake, model, upstream api key, price per second (USD))
    "ark": ("ark", "/api/v3", "bytedance/doubao-seedance-2.0", UPSTREAM_KEY, "0.138"),
    "kling": ("kling", "", "kling/kling-v3", f"{KLING_AK}:{KLING_SK}", "0.168"),
    "dashscope": ("dashscope", "/api/v1", "alibaba/wan2.2-t2v-plus", UPSTREAM_KEY, "0.1"),
}


def call(gw: Harness, method: str, path: str, key: str, body: object | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"{gw.base_url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_terminal(gw: Harness, key: str, task_id: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, task = call(gw, "GET", f"/videos/generations/{task_id}", key)
        assert status == 200, task
        if task["status"] in ("succeeded", "failed", "cancelled", "expired"):
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.05)


@pytest.fixture
def fast_gateway(make_gateway, sqlite_url):
    def make(url: str | None = None, **overrides: object) -> Harness:
        return make_gateway(url or sqlite_url, task_poll_base=0.02, **overrides)

    return make


@pytest.fixture(params=list(PROVIDERS))
def env(request: pytest.FixtureRequest, fast_gateway, media_servers):
    name = request.param
    provider, path, model, upstream_key, price = PROVIDERS[name]
    gw = fast_gateway()
    gw.channel(provider, media_servers[name].url + path, api_key=upstream_key, name=f"ch-{name}")
    cust = customer(gw, credits_usd="10")
    return name, gw, cust, model, usd_to_nanos(price)


def test_happy_path_charges_the_reported_duration(env):
    name, gw, cust, model, price = env
    status, task = call(gw, "POST", "/videos/generations", cust.key, {"model": model, "prompt": "a cat surfing", "duration": 5})
    assert status == 200, task
    assert task["id"].startswith("tsk-") and task["object"] == "video.generation.task" and task["status"] in ("queued", "running")
    assert task["model"] == model
    gw.flush()
    assert gw.credits(cust.email)["held_nanos"] == 5 * price  # the requested duration is held
    done = wait_terminal(gw, cust.key, task["id"])
    assert done["status"] == "succeeded", done
    assert done["data"][0]["video_url"].startswith("http")
    seconds = Decimal(str(done["usage"]["duration_seconds"]))
    assert Decimal(str(done["usage"]["cost"])) == Decimal(format_usd(int(seconds * price)))
    if name == "ark":
        assert done["expires_at"] and done["expires_at"] > time.time() + 3600  # upstream URLs expire
    gw.flush()
    summary = gw.credits(cust.email)
    assert summary["held_nanos"] == 0 and summary["total_usage_nanos"] == int(seconds * price)
    assert gw.ledger_report().ok


def test_failure_refunds_everything(env):
    name, gw, cust, model, price = env
    status, task = call(gw, "POST", "/videos/generations", cust.key, {"model": model, "prompt": "x #fake:fail", "duration": 5})
    assert status == 200, task
    done = wait_terminal(gw, cust.key, task["id"])
    assert done["status"] == "failed" and done["error"]["message"]
    assert Decimal(str(done["usage"]["cost"])) == 0
    gw.flush()
    assert gw.credits(cust.email)["balance_nanos"] == usd_to_nanos("10")
    assert gw.ledger_report().ok


def test_submit_failure_answers_the_error_and_releases(env):
    name, gw, cust, model, price = env
    status, body = call(gw, "POST", "/videos/generations", cust.key, {"model": model, "prompt": "x #fake:status=500", "duration": 5})
    assert status == 502 and body["error"]["message"]
    gw.flush()
    assert gw.credits(cust.email)["balance_nanos"] == usd_to_nanos("10")


def test_other_accounts_see_404_and_lists_are_private(env):
    name, gw, cust, model, price = env
    _, task = call(gw, "POST", "/videos/generations", cust.key, {"model": model, "prompt": "mine", "duration": 5})
    other = customer(gw, "other@example.com")
    status, body = call(gw, "GET", f"/videos/generations/{task['id']}", other.key)
    assert status == 404 and body["error"]["code"] == "task_not_found"
    assert call(gw, "GET", "/videos/generations", other.key)[1]["data"] == []
    listed = call(gw, "GET", "/videos/generations?limit=5", cust.key)[1]
    assert [t["id"] for t in listed["data"]] == [task["id"]] and listed["total"] == 1


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [("duration", 99, "duration"), ("duration", "5", "duration"), ("resolution", "8k", "resolution"),
     ("aspect_ratio", "7:3", "aspect_ratio"), ("generate_audio", "yes", "generate_audio"), ("prompt", "", "prompt"),
     ("content", [{"type": "image_url", "image_url": {"url": "http://x.example/a.png"}, "role": "first_frame"}] * 2, "content"),
     ("content", [{"type": "video_url", "video_url": {"url": "http://x.example/a.png"}, "role": "first_frame"}], "content[0].type"),
     ("content", [{"type": "image_url", "image_url": {"url": "ftp://x"}, "role": "first_frame"}], "content[0].image_url.url"),
     ("callback_url", "not a url", "callback_url")],
)
def test_validation_names_the_field(fast_gateway, media_servers, field, value, param):
    gw = fast_gateway()
    gw.channel("ark", media_servers["ark"].url + "/api/v3", name="ark")
    cust = customer(gw)
    body = {"model": "bytedance/doubao-seedance-2.0", "prompt": "a cat", "duration": 5, field: value}
    status, answer = call(gw, "POST", "/videos/generations", cust.key, body)
    assert status == 400, answer
    assert answer["error"]["param"] == param
    gw.flush()
    assert gw.credits(cust.email)["held_nanos"] == 0


def test_mode_and_audio_follow_the_model(fast_gateway, media_servers):
    gw = fast_gateway()
    gw.channel("kling", media_servers["kling"].url, api_key=f"{KLING_AK}:{KLING_SK}", name="kl")
    gw.channel("dashscope", media_servers["dashscope"].url + "/api/v1", name="ds")
    cust = customer(gw, credits_usd="10")
    status, task = call(gw, "POST", "/videos/generations", cust.key, {"model": "kling/kling-v3", "prompt": "pro cat", "duration": 5, "mode": "pro"})
    assert status == 200, task
    gw.flush()
    assert gw.credits(cust.email)["held_nanos"] == 5 * usd_to_nanos("0.224")  # Kling pro without audio
    status, body = call(gw, "POST", "/videos/generations", cust.key, {"model": "alibaba/wan2.2-t2v-plus", "prompt": "x", "mode": "pro"})
    assert status == 400 and body["error"]["param"] == "mode"


def test_reported_duration_is_what_is_charged(fast_gateway, media_servers):
    gw = fast_gateway()
    gw.channel("ark", media_servers["ark"].url + "/api/v3", name="ark")
    cust = customer(gw, credits_usd="10")
    _, task = call(gw, "POST", "/videos/generations", cust.key, {"model": "bytedance/doubao-seedance-2.0", "prompt": "x #fake:duration=4", "duration": 6})
    done = wait_terminal(gw, cust.key, task["id"])
    assert Decimal(str(done["usage"]["duration_seconds"])) == 4
    gw.flush()
    assert gw.credits(cust.email)["total_usage_nanos"] == 4 * usd_to_nanos("0.138")


def test_timeout_sweep_refunds_hung_tasks(fast_gateway, media_servers):
    gw = fast_gateway(task_timeout=0.5)
    gw.channel("ark", media_servers["ark"].url + "/api/v3", name="ark")
    cust = customer(gw, credits_usd="10")
    _, task = call(gw, "POST", "/videos/generations", cust.key, {"model": "bytedance/doubao-seedance-2.0", "prompt": "x #fake:hang", "duration": 5})
    done = wait_terminal(gw, cust.key, task["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "timeout"
    gw.flush()
    assert gw.credits(cust.email)["balance_nanos"] == usd_to_nanos("10") and gw.ledger_report().ok


def test_a_restart_mid_task_resumes_polling(make_gateway, sqlite_url, media_servers):
    first = make_gateway(sqlite_url, task_poll_base=1.0)  # stops before its first poll is due
    first.channel("ark", media_servers["ark"].url + "/api/v3", name="ark")
    cust = customer(first, credits_usd="10")
    _, task = call(first, "POST", "/videos/generations", cust.key, {"model": "bytedance/doubao-seedance-2.0", "prompt": "x", "duration": 5})
    first.stop()
    second = make_gateway(sqlite_url, task_poll_base=0.02)
    done = wait_terminal(second, cust.key, task["id"])
    assert done["status"] == "succeeded"
    second.flush()
    assert second.credits(cust.email)["total_usage_nanos"] == 5 * usd_to_nanos("0.138") and second.ledger_report().ok


@pytest.mark.postgres
def test_two_pollers_on_one_database_charge_once(make_gateway, media_servers):
    from tests.support.harness import create_pg_database, drop_pg_database

    name = create_pg_database()
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        a = make_gateway(url, task_poll_base=0.02)
        a.channel("ark", media_servers["ark"].url + "/api/v3", name="ark")
        cust = customer(a, credits_usd="10")
        b = make_gateway(url, task_poll_base=0.02)
        ids = [call(a, "POST", "/videos/generations", cust.key, {"model": "bytedance/doubao-seedance-2.0", "prompt": f"v{i}", "duration": 5})[1]["id"]
               for i in range(6)]
        for task_id in ids:
            assert wait_terminal(b, cust.key, task_id)["status"] == "succeeded"
        a.flush()
        b.flush()
        assert a.credits(cust.email)["total_usage_nanos"] == 6 * 5 * usd_to_nanos("0.138")
        assert a.ledger_report().ok
    finally:
        drop_pg_database(name)


@pytest.fixture
def callback_sink():
    received: list[tuple[dict, bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = ServerThread(app).start()
    yield server, received
    server.stop()


def test_callback_arrives_signed_once(fast_gateway, media_servers, callback_sink):
    server, received = callback_sink
    gw = fast_gateway(fetch_allow_private=True)  # the sink lives on loopback
    gw.channel("ark", media_servers["ark"].url + "/api/v3", name="ark")
    cust = customer(gw, credits_usd="10")
    secret = call(gw, "GET", "/key", cust.key)[1]["data"]["webhook_secret"]
    _, task = call(gw, "POST", "/videos/generations", cust.key,
                   {"model": "bytedance/doubao-seedance-2.0", "prompt": "x", "duration": 5, "callback_url": f"{server.url}/hook"})
    wait_terminal(gw, cust.key, task["id"])
    deadline = time.monotonic() + 10
    while not received:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert len(received) == 1
    headers, body = received[0]
    stamp = headers["X-TokenHub-Timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-TokenHub-Signature"], expected)
    assert json.loads(body)["id"] == task["id"] and json.loads(body)["status"] == "succeeded"


def test_callbacks_to_private_addresses_are_refused(fast_gateway, media_servers, callback_sink):
    server, received = callback_sink
    gw = fast_gateway()  # default policy: loopback is not allowed
    gw.channel("ark", media_servers["ark"].url + "/api/v3", name="ark")
    cust = customer(gw, credits_usd="10")
    _, task = call(gw, "POST", "/videos/generations", cust.key,
                   {"model": "bytedance/doubao-seedance-2.0", "prompt": "x", "duration": 5, "callback_url": f"{server.url}/hook"})
    wait_terminal(gw, cust.key, task["id"])
    time.sleep(0.5)
    assert received == []
