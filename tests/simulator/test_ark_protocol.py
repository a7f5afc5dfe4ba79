"""The fake Volcengine Ark upstream (Seedance tasks, Seedream images), exercised over real HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from tests.support.servers import ServerThread
from tokenhub.simulator.ark import FakeArkState, create_app

API_KEY = "ark-test"
TASKS = "/api/v3/contents/generations/tasks"
IMAGES = "/api/v3/images/generations"
SEEDANCE = "doubao-seedance-2-0-260128"
SEEDREAM = "doubao-seedream-5-0-260128"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app(api_keys={API_KEY})).start()
    yield srv
    srv.stop()


@pytest.fixture
def state(server: ServerThread) -> FakeArkState:
    st: FakeArkState = server.app["state"]
    st.reset()
    return st


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = API_KEY,
             raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            resp_headers = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if resp_headers.get("content-type", "").startswith("application/json"):
            return resp.status, resp_headers, json.loads(payload)
        return resp.status, resp_headers, payload

    def create(self, text: str = "A kitten yawning", *, model: str = SEEDANCE, **extra: Any) -> str:
        status, _, body = self.call("POST", TASKS, video_body(text, model=model, **extra))
        assert status == 200, body
        assert set(body) == {"id"}
        return body["id"]

    def poll(self, task_id: str) -> dict[str, Any]:
        status, _, body = self.call("GET", f"{TASKS}/{task_id}")
        assert status == 200, body
        return body

    def statuses(self, task_id: str, n: int) -> list[str]:
        return [self.poll(task_id)["status"] for _ in range(n)]


@pytest.fixture
def client(server: ServerThread, state: FakeArkState) -> Client:
    return Client(server.port)


def video_body(text: str | None = "A kitten yawning", *, model: str = SEEDANCE,
               media: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
    return {"model": model, "content": content + (media or []), **extra}


def image(role: str | None, url: str = "https://example.com/a.png") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


def ref_video() -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}, "role": "reference_video"}


def ref_audio() -> dict[str, Any]:
    return {"type": "audio_url", "audio_url": {"url": "https://example.com/a.mp3"}, "role": "reference_audio"}


def assert_error(result: tuple[int, dict[str, str], Any], status: int, code: str, param: str | None = None,
                 type_: str | None = None) -> dict[str, Any]:
    got_status, headers, body = result
    assert got_status == status, body
    error = body["error"]
    assert set(error) == {"code", "message", "param", "type"}
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    if type_ is not None:
        assert error["type"] == type_
    assert error["message"].endswith(f"Request id: {headers['x-request-id']}")
    return error


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def fetch(url: str) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", parts.path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- lifecycle


def test_happy_path_through_all_states(client: Client, state: FakeArkState) -> None:
    task_id = client.create(resolution="720p", ratio="16:9", duration=5, seed=11, generate_audio=True)
    assert task_id.startswith("cgt-") and len(task_id) == len("cgt-20250629201507-n6k56")

    first = client.poll(task_id)
    assert first["status"] == "queued" and first["error"] is None
    assert "content" not in first and "usage" not in first
    assert isinstance(first["created_at"], int) and isinstance(first["updated_at"], int)
    assert client.statuses(task_id, 2) == ["running", "running"]

    done = client.poll(task_id)
    assert done["status"] == "succeeded" and done["error"] is None
    assert done["model"] == SEEDANCE and done["id"] == task_id
    assert (done["resolution"], done["ratio"], done["duration"], done["seed"]) == ("720p", "16:9", 5, 11)
    assert done["framespersecond"] == 24 and done["generate_audio"] is True
    assert done["service_tier"] == "default" and done["execution_expires_after"] == 172800
    assert done["usage"] == {"completion_tokens": 108900, "total_tokens": 108900}  # 1280*720*121/1024
    assert done["updated_at"] >= done["created_at"]
    assert client.poll(task_id)["status"] == "succeeded"  # terminal is sticky

    status, content_type, data = fetch(done["content"]["video_url"])
    assert (status, content_type) == (200, "video/mp4") and data

    record = state.tasks[task_id]
    assert record.history == ["queued", "running", "succeeded"]
    assert record.polls == 5
    assert record.request["content"][0]["text"] == "A kitten yawning"
    recorded = state.requests[0]
    assert recorded.method == "POST" and recorded.path == TASKS
    assert recorded.headers["authorization"] == f"Bearer {API_KEY}"


def test_queued_and_polls_directives(client: Client) -> None:
    assert client.statuses(client.create("go #fake:queued=0 #fake:polls=0"), 1) == ["succeeded"]
    assert client.statuses(client.create("#fake:queued=2 #fake:polls=1"), 4) == [
        "queued", "queued", "running", "succeeded"]


def test_fail_directive(client: Client) -> None:
    task_id = client.create("#fake:fail #fake:polls=0")
    assert client.poll(task_id)["status"] == "queued"
    body = client.poll(task_id)
    assert body["status"] == "failed"
    assert body["error"]["code"] == "OutputVideoSensitiveContentDetected" and body["error"]["message"]
    assert "content" not in body and "usage" not in body
    task_id = client.create("#fake:fail=InternalServiceError #fake:queued=0 #fake:polls=0")
    assert client.poll(task_id)["error"]["code"] == "InternalServiceError"


def test_expire_cancel_upstream_hang(client: Client) -> None:
    expired = client.create("#fake:expire")
    assert client.statuses(expired, 4)[-1] == "expired"
    assert client.poll(expired)["error"] is None
    cancelled = client.create("#fake:cancel_upstream")
    assert client.statuses(cancelled, 3) == ["queued", "cancelled", "cancelled"]
    hanging = client.create("#fake:hang")
    assert client.statuses(hanging, 12) == ["queued"] + ["running"] * 11


def test_duration_directive_and_auto_duration(client: Client, state: FakeArkState) -> None:
    task_id = client.create("#fake:duration=7 #fake:queued=0 #fake:polls=0", duration=5, resolution="480p")
    body = client.poll(task_id)
    assert body["duration"] == 7
    assert body["usage"]["completion_tokens"] == 864 * 496 * (24 * 7 + 1) // 1024
    assert state.tasks[task_id].duration == 5

    auto = client.create("#fake:queued=1 #fake:polls=0", duration=-1)
    assert client.poll(auto)["duration"] == -1
    assert client.poll(auto)["duration"] == 5


def test_status_directive_on_create(client: Client, state: FakeArkState) -> None:
    result = client.call("POST", TASKS, video_body("#fake:status=429 #fake:retry_after=3"))
    assert_error(result, 429, "RateLimitExceeded.EndpointRPMExceeded", type_="TooManyRequests")
    assert result[1]["retry-after"] == "3"
    assert_error(client.call("POST", TASKS, video_body("#fake:status=500")), 500, "InternalServiceError")
    assert_error(client.call("POST", TASKS, video_body("#fake:status=429 #fake:error_code=QuotaExceeded")),
                 429, "QuotaExceeded")
    assert state.tasks == {}


def test_poll_status_fails_then_recovers(client: Client, state: FakeArkState) -> None:
    task_id = client.create("#fake:poll_status=503 #fake:poll_errors=2")
    for _ in range(2):
        assert_error(client.call("GET", f"{TASKS}/{task_id}"), 503, "ServiceUnavailable")
    assert state.tasks[task_id].polls == 0
    assert client.statuses(task_id, 4) == ["queued", "running", "running", "succeeded"]
    once = client.create("#fake:poll_status=429")
    assert client.call("GET", f"{TASKS}/{once}")[0] == 429
    assert client.poll(once)["status"] == "queued"


def test_unknown_or_bad_directive_is_400(client: Client) -> None:
    error = assert_error(client.call("POST", TASKS, video_body("#fake:nope")), 400, "InvalidParameter", "content")
    assert "#fake:nope" in error["message"]
    assert_error(client.call("POST", TASKS, video_body("#fake:queued=x")), 400, "InvalidParameter", "content")
    assert_error(client.call("POST", TASKS, video_body("#fake:hang=1")), 400, "InvalidParameter")
    assert_error(client.call("POST", TASKS, video_body("#fake:status=200")), 400, "InvalidParameter")


def test_first_frame_adaptive_ratio_last_frame_and_audio_flag(client: Client) -> None:
    task_id = client.create("#fake:queued=1 #fake:polls=0", media=[image(None)], generate_audio=False,
                            return_last_frame=True)
    queued = client.poll(task_id)
    assert queued["ratio"] == "adaptive" and queued["generate_audio"] is False
    done = client.poll(task_id)
    assert done["ratio"] == "16:9"
    status, content_type, _ = fetch(done["content"]["last_frame_url"])
    assert (status, content_type) == (200, "image/png")


def test_seedance_1_0_defaults(client: Client) -> None:
    task_id = client.create("#fake:queued=0 #fake:polls=0", model="doubao-seedance-1-0-pro-250528")
    body = client.poll(task_id)
    assert "generate_audio" not in body and body["resolution"] == "1080p"
    assert body["usage"]["completion_tokens"] == 1920 * 1088 * 121 // 1024
    assert isinstance(body["seed"], int) and body["seed"] >= 0


# --------------------------------------------------------------------------- callbacks


@pytest.fixture
def receiver() -> Iterator[tuple[ServerThread, list[dict[str, Any]], list[int]]]:
    received: list[dict[str, Any]] = []
    failures: list[int] = [0]  # answer 500 this many times first

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        if failures[0] > 0:
            failures[0] -= 1
            return web.Response(status=500)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    srv = ServerThread(app).start()
    yield srv, received, failures
    srv.stop()


def test_callback_on_each_status_change(client: Client, state: FakeArkState, receiver: Any) -> None:
    srv, received, _ = receiver
    url = f"{srv.url}/hook"
    task_id = client.create("#fake:callback #fake:polls=1", callback_url=url)
    client.statuses(task_id, 3)
    wait_for(lambda: len(received) == 3 and len(state.callbacks) == 3)
    assert [b["status"] for b in received] == ["queued", "running", "succeeded"]
    assert received[-1]["content"]["video_url"].endswith(f"/videos/{task_id}.mp4")
    assert received[-1] == client.poll(task_id)
    assert all(a.http_status == 200 and a.attempt == 1 for a in state.callbacks)

    silent = client.create("no directive", callback_url=url)
    client.statuses(silent, 4)
    time.sleep(0.1)
    assert len(received) == 3


def test_callback_retries_terminal_status(client: Client, state: FakeArkState, receiver: Any) -> None:
    srv, received, failures = receiver
    task_id = client.create("#fake:callback #fake:queued=0 #fake:polls=0 #fake:fail", callback_url=f"{srv.url}/hook")
    wait_for(lambda: len(received) == 1)  # queued
    failures[0] = 2
    assert client.poll(task_id)["status"] == "failed"
    wait_for(lambda: len(received) == 4)
    # the receiver has the fourth body before the simulator records that attempt's answer
    wait_for(lambda: len(state.callbacks) == 4)
    attempts = [(a.status, a.attempt, a.http_status) for a in state.callbacks]
    assert attempts == [("queued", 1, 200), ("failed", 1, 500), ("failed", 2, 500), ("failed", 3, 200)]

    dead = client.create("#fake:callback", callback_url="http://127.0.0.1:9/nothing")
    wait_for(lambda: any(a.task_id == dead for a in state.callbacks))
    attempt = next(a for a in state.callbacks if a.task_id == dead)
    assert attempt.http_status is None and attempt.error


# --------------------------------------------------------------------------- list and cancel


def test_list_filters_and_pagination(client: Client, state: FakeArkState) -> None:
    ids = [client.create(f"task {i}") for i in range(3)]
    fast = client.create("fast one", model="doubao-seedance-2-0-fast-260128", service_tier="flex")
    client.poll(ids[0])
    client.poll(ids[0])  # running

    _, _, body = client.call("GET", TASKS)
    assert body["total"] == 4 and [t["id"] for t in body["items"]] == [fast, ids[2], ids[1], ids[0]]
    assert state.tasks[ids[1]].polls == 0  # listing is not polling

    _, _, page = client.call("GET", f"{TASKS}?page_num=2&page_size=3")
    assert page["total"] == 4 and [t["id"] for t in page["items"]] == [ids[0]]
    _, _, running = client.call("GET", f"{TASKS}?filter.status=running")
    assert [t["id"] for t in running["items"]] == [ids[0]] and running["items"][0]["status"] == "running"
    _, _, by_model = client.call("GET", f"{TASKS}?filter.model=doubao-seedance-2-0-fast-260128")
    assert [t["id"] for t in by_model["items"]] == [fast]
    _, _, by_tier = client.call("GET", f"{TASKS}?filter.service_tier=flex")
    assert [t["id"] for t in by_tier["items"]] == [fast]
    _, _, by_ids = client.call("GET", f"{TASKS}?filter.task_ids={ids[0]}&filter.task_ids={ids[2]}")
    assert {t["id"] for t in by_ids["items"]} == {ids[0], ids[2]}

    assert_error(client.call("GET", f"{TASKS}?page_size=501"), 400, "InvalidParameter", "page_size")
    assert_error(client.call("GET", f"{TASKS}?page_num=zero"), 400, "InvalidParameter", "page_num")
    assert_error(client.call("GET", f"{TASKS}?filter.status=done"), 400, "InvalidParameter", "filter.status")


def test_cancel_and_delete(client: Client, state: FakeArkState) -> None:
    queued = client.create()
    status, _, body = client.call("DELETE", f"{TASKS}/{queued}")
    assert (status, body) == (200, {})
    assert client.poll(queued)["status"] == "cancelled"
    assert state.tasks[queued].history == ["queued", "cancelled"]
    assert_error(client.call("DELETE", f"{TASKS}/{queued}"), 400, "InvalidParameter")

    running = client.create("#fake:queued=0")
    assert client.poll(running)["status"] == "running"
    assert_error(client.call("DELETE", f"{TASKS}/{running}"), 400, "InvalidParameter")

    done = client.create("#fake:queued=0 #fake:polls=0")
    assert client.poll(done)["status"] == "succeeded"
    assert client.call("DELETE", f"{TASKS}/{done}")[0] == 200
    assert_error(client.call("GET", f"{TASKS}/{done}"), 404, "ResourceNotFound", type_="NotFound")
    assert state.tasks[done].deleted
    assert done not in [t["id"] for t in client.call("GET", TASKS)[2]["items"]]

    assert_error(client.call("DELETE", f"{TASKS}/cgt-nope"), 404, "ResourceNotFound")
    assert_error(client.call("GET", f"{TASKS}/cgt-nope"), 404, "ResourceNotFound")


# --------------------------------------------------------------------------- images


def test_image_url(client: Client, state: FakeArkState) -> None:
    status, headers, body = client.call("POST", IMAGES, {"model": SEEDREAM, "prompt": "a red fox", "n": 3})
    assert status == 200 and headers["x-request-id"]
    assert body["model"] == SEEDREAM and isinstance(body["created"], int)
    assert len(body["data"]) == 1  # Ark has no n
    item = body["data"][0]
    assert set(item) == {"url", "size"} and item["size"] == "2048x2048"
    assert body["usage"] == {"generated_images": 1, "output_tokens": 16384, "total_tokens": 16384}
    status, content_type, data = fetch(item["url"])
    assert (status, content_type) == (200, "image/jpeg") and data
    assert state.requests[-1].json["prompt"] == "a red fox"


def test_image_b64_json_and_sizes(client: Client) -> None:
    _, _, body = client.call("POST", IMAGES, {"model": SEEDREAM, "prompt": "x", "response_format": "b64_json",
                                              "size": "2560x1440", "output_format": "png"})
    item = body["data"][0]
    assert set(item) == {"b64_json", "size"} and item["size"] == "2560x1440"
    assert base64.b64decode(item["b64_json"]).startswith(b"\x89PNG")
    assert body["usage"]["output_tokens"] == 2560 * 1440 // 256
    _, _, body = client.call("POST", IMAGES, {"model": SEEDREAM, "prompt": "x", "size": "4K"})
    assert body["data"][0]["size"] == "4096x4096"


def test_image_group_generation(client: Client) -> None:
    group = {"model": SEEDREAM, "sequential_image_generation": "auto",
             "sequential_image_generation_options": {"max_images": 3}}
    _, _, body = client.call("POST", IMAGES, {**group, "prompt": "four seasons"})
    assert len(body["data"]) == 3 and body["usage"]["generated_images"] == 3
    _, _, body = client.call("POST", IMAGES, {**group, "prompt": "two #fake:images=2"})
    assert len(body["data"]) == 2
    _, _, body = client.call("POST", IMAGES, {**group, "prompt": "#fake:failed_images=1"})
    assert [("error" in d) for d in body["data"]] == [False, False, True]
    assert body["data"][2]["error"]["code"] == "OutputImageSensitiveContentDetected"
    assert body["usage"]["generated_images"] == 2 and body["usage"]["output_tokens"] == 2 * 16384
    _, _, body = client.call("POST", IMAGES, {"model": SEEDREAM, "prompt": "#fake:images=20",
                                              "sequential_image_generation": "auto", "image": ["u"] * 13})
    assert len(body["data"]) == 2  # references + outputs <= 15


def test_image_directives(client: Client) -> None:
    result = client.call("POST", IMAGES, {"model": SEEDREAM, "prompt": "#fake:status=429"})
    assert_error(result, 429, "RateLimitExceeded.EndpointRPMExceeded")
    assert_error(client.call("POST", IMAGES, {"model": SEEDREAM, "prompt": "#fake:fail"}), 400,
                 "OutputImageSensitiveContentDetected")
    assert_error(client.call("POST", IMAGES, {"model": SEEDREAM, "prompt": "#fake:what"}), 400,
                 "InvalidParameter", "prompt")


@pytest.mark.parametrize("extra, code, param", [
    ({"model": None}, "MissingParameter", "model"),
    ({"prompt": None}, "MissingParameter", "prompt"),
    ({"prompt": ""}, "InvalidParameter", "prompt"),
    ({"model": SEEDANCE}, "InvalidParameter", "model"),
    ({"size": "1024x1024"}, "InvalidParameter", "size"),  # below 2560x1440 pixels for 5.0
    ({"size": "8K"}, "InvalidParameter", "size"),
    ({"size": "4096x200"}, "InvalidParameter", "size"),
    ({"response_format": "png"}, "InvalidParameter", "response_format"),
    ({"seed": 2**31}, "InvalidParameter", "seed"),
    ({"watermark": "no"}, "InvalidParameter", "watermark"),
    ({"stream": True}, "InvalidParameter", "stream"),
    ({"output_format": "gif"}, "InvalidParameter", "output_format"),
    ({"image": ["u"] * 15}, "InvalidParameter", "image"),
    ({"sequential_image_generation": "on"}, "InvalidParameter", "sequential_image_generation"),
    ({"sequential_image_generation_options": {"max_images": 16}}, "InvalidParameter",
     "sequential_image_generation_options.max_images"),
])
def test_image_validation(client: Client, extra: dict[str, Any], code: str, param: str) -> None:
    body = {k: v for k, v in {"model": SEEDREAM, "prompt": "x", **extra}.items() if v is not None}
    assert_error(client.call("POST", IMAGES, body), 400, code, param, "BadRequest")


def test_image_unknown_model_and_legacy_size(client: Client) -> None:
    assert_error(client.call("POST", IMAGES, {"model": "gpt-image-1", "prompt": "x"}), 404,
                 "InvalidEndpointOrModel.NotFound", "model", "NotFound")
    _, _, body = client.call("POST", IMAGES, {"model": "doubao-seedream-4-0-250828", "prompt": "x",
                                              "size": "1280x720"})
    assert body["data"][0]["size"] == "1280x720"


# --------------------------------------------------------------------------- video validation


@pytest.mark.parametrize("body, code, param", [
    ({"content": [{"type": "text", "text": "x"}]}, "MissingParameter", "model"),
    ({"model": SEEDANCE}, "MissingParameter", "content"),
    ({"model": SEEDANCE, "content": []}, "InvalidParameter", "content"),
    (video_body(model=SEEDREAM), "InvalidParameter", "model"),
    (video_body(duration=3), "InvalidParameter", "duration"),
    (video_body(duration=16), "InvalidParameter", "duration"),
    (video_body(duration="5"), "InvalidParameter", "duration"),
    (video_body(duration=True), "InvalidParameter", "duration"),
    (video_body(model="doubao-seedance-1-0-pro-250528", duration=-1), "InvalidParameter", "duration"),
    (video_body(model="doubao-seedance-1-5-pro-251215", duration=13), "InvalidParameter", "duration"),
    (video_body(resolution="2k"), "InvalidParameter", "resolution"),
    (video_body(model="doubao-seedance-2-0-fast-260128", resolution="1080p"), "InvalidParameter", "resolution"),
    (video_body(ratio="2:1"), "InvalidParameter", "ratio"),
    (video_body(generate_audio="yes"), "InvalidParameter", "generate_audio"),
    (video_body(watermark=1), "InvalidParameter", "watermark"),
    (video_body(seed=2**32), "InvalidParameter", "seed"),
    (video_body(service_tier="fast"), "InvalidParameter", "service_tier"),
    (video_body(execution_expires_after=60), "InvalidParameter", "execution_expires_after"),
    (video_body(callback_url=5), "InvalidParameter", "callback_url"),
    (video_body(media=[{"type": "text", "text": "again"}]), "InvalidParameter", "content"),
    (video_body(text="   "), "InvalidParameter", "content[0].text"),
    (video_body(media=[{"type": "draft_task", "draft_task": {"id": "cgt-x"}}]), "InvalidParameter",
     "content[1].type"),
    (video_body(media=[{"type": "image_url", "image_url": {}}]), "InvalidParameter", "content[1].image_url.url"),
    (video_body(media=[image("middle_frame")]), "InvalidParameter", "content[1].role"),
    (video_body(media=[image(None), image(None)]), "InvalidParameter", "content[1].role"),
    (video_body(media=[image("first_frame"), image("first_frame")]), "InvalidParameter", "content"),
    (video_body(media=[image("last_frame")]), "InvalidParameter", "content"),
    (video_body(media=[image("first_frame"), image("reference_image")]), "InvalidParameter", "content"),
    (video_body(media=[ref_audio()]), "InvalidParameter", "content"),
    (video_body(media=[image("reference_image")] * 10), "InvalidParameter", "content"),
    (video_body(media=[ref_video()] * 4), "InvalidParameter", "content"),
    (video_body(media=[image("reference_image")] * 9 + [ref_video()] * 3 + [ref_audio()]), "InvalidParameter",
     "content"),
    (video_body(media=[{**ref_video(), "role": "reference_audio"}]), "InvalidParameter", "content[1].role"),
    (video_body(model="doubao-seedance-1-5-pro-251215", media=[ref_video()]), "InvalidParameter",
     "content[1].type"),
    (video_body(text=None), "InvalidParameter", "content"),
])
def test_video_validation(client: Client, state: FakeArkState, body: dict[str, Any], code: str, param: str) -> None:
    assert_error(client.call("POST", TASKS, body), 400, code, param, "BadRequest")
    assert state.tasks == {}


def test_video_valid_media_combinations(client: Client) -> None:
    client.create(media=[image("first_frame"), image("last_frame")])
    client.create(media=[image("reference_image"), ref_video(), ref_audio()])
    status, _, _ = client.call("POST", TASKS, video_body(text=None, media=[image(None)]))
    assert status == 200


def test_video_unknown_model_and_bad_json(client: Client) -> None:
    assert_error(client.call("POST", TASKS, video_body(model="veo-3")), 404, "InvalidEndpointOrModel.NotFound",
                 "model", "NotFound")
    assert client.call("POST", TASKS, video_body(model="ep-20250101-abc"))[0] == 200
    assert client.call("POST", TASKS, video_body(model="doubao-seedance-9-9-991231"))[0] == 200
    assert_error(client.call("POST", TASKS, raw=b"{not json"), 400, "InvalidParameter")
    assert_error(client.call("POST", TASKS, raw=b"[]"), 400, "InvalidParameter")


# --------------------------------------------------------------------------- auth and routing


@pytest.mark.parametrize("method, path", [("POST", TASKS), ("GET", TASKS), ("GET", f"{TASKS}/cgt-x"),
                                          ("DELETE", f"{TASKS}/cgt-x"), ("POST", IMAGES)])
@pytest.mark.parametrize("key", [None, "wrong"])
def test_auth(client: Client, state: FakeArkState, method: str, path: str, key: str | None) -> None:
    body = video_body() if path == TASKS else {"model": SEEDREAM, "prompt": "x"}
    assert_error(client.call(method, path, body if method == "POST" else None, key=key), 401,
                 "AuthenticationError", type_="Unauthorized")
    assert state.tasks == {} and state.requests[-1].path == path


def test_no_keys_accepts_anything() -> None:
    srv = ServerThread(create_app(models=["custom-seedance-model"])).start()
    try:
        client = Client(srv.port)
        assert client.call("POST", TASKS, video_body(model="custom-seedance-model"), key=None)[0] == 200
    finally:
        srv.stop()


def test_unknown_route(client: Client, state: FakeArkState) -> None:
    assert_error(client.call("POST", "/api/v3/videos/generations", {}), 404, "NotFound")
    assert state.requests[-1].path == "/api/v3/videos/generations"
    assert fetch(f"http://127.0.0.1:{client.port}/videos/cgt-nope.mp4")[0] == 404
