"""The fake Kling upstream, exercised over real HTTP with real HS256 JWTs (PyJWT)."""

from __future__ import annotations

import base64
import http.client
import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from tests.support.servers import ServerThread
from tokenhub.simulator.kling import FakeKlingState, create_app

ACCESS_KEY = "ak-test-0123456789"
SECRET_KEY = "sk-test-0123456789abcdef0123456789abcdef"  # >= 32 bytes: no InsecureKeyLengthWarning
OTHER_ACCESS_KEY = "ak-other-0123456789"
OTHER_SECRET_KEY = "sk-other-0123456789abcdef0123456789abcdef"
CREDENTIALS = {ACCESS_KEY: SECRET_KEY, OTHER_ACCESS_KEY: OTHER_SECRET_KEY}
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 24).decode()

Response = tuple[int, dict[str, str], Any]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app(CREDENTIALS)).start()
    yield srv
    srv.stop()


@pytest.fixture
def state(server: ServerThread) -> FakeKlingState:
    st: FakeKlingState = server.app["state"]
    st.reset()
    return st


def make_token(access_key: str = ACCESS_KEY, secret: str = SECRET_KEY, *, algorithm: str = "HS256",
               headers: dict[str, Any] | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": access_key, "exp": now + 1800, "nbf": now - 5, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm=algorithm, headers=headers or {"alg": algorithm, "typ": "JWT"})


def call(server: ServerThread, method: str, path: str, body: Any = None, *, token: str | None = None,
         authorization: str | None = None, raw: bytes | None = None) -> Response:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    else:
        headers["Authorization"] = f"Bearer {token or make_token()}"
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        content_type = resp.getheader("Content-Type") or ""
        parsed = json.loads(data) if content_type.startswith("application/json") else data
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed
    finally:
        conn.close()


def create(server: ServerThread, family: str = "text2video", **fields: Any) -> Response:
    body: dict[str, Any] = {"model_name": "kling-v3", "prompt": "A fox in the snow", "duration": "5", "mode": "std"}
    if family == "image2video":
        body.update(image=PNG_B64, model_name="kling-v2-6")
    if family == "omni-video":
        body.update(model_name="kling-v3-omni")
    body.update(fields)
    return call(server, "POST", f"/v1/videos/{family}", {k: v for k, v in body.items() if v is not None})


def create_ok(server: ServerThread, family: str = "text2video", **fields: Any) -> str:
    status, _, body = create(server, family, **fields)
    assert status == 200, body
    return body["data"]["task_id"]


def poll(server: ServerThread, task_id: str, family: str = "text2video") -> dict[str, Any]:
    status, _, body = call(server, "GET", f"/v1/videos/{family}/{task_id}")
    assert status == 200, body
    assert body["code"] == 0 and body["message"] == "SUCCEED"
    return body["data"]


def assert_error(response: Response, http_status: int, code: int) -> str:
    status, headers, body = response
    assert status == http_status, body
    assert headers["content-type"].startswith("application/json")
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert "data" not in body
    return body["message"]


# --------------------------------------------------------------------------- auth


def test_valid_jwt_creates_a_submitted_task(server: ServerThread, state: FakeKlingState) -> None:
    status, _, body = create(server, external_task_id="gw-1", callback_url="https://example.com/cb")
    assert status == 200
    assert body["code"] == 0 and body["message"] == "SUCCEED" and body["request_id"]
    data = body["data"]
    assert set(data) == {"task_id", "task_status", "task_info", "created_at", "updated_at"}
    assert data["task_status"] == "submitted"
    assert data["task_id"].isdigit() and len(data["task_id"]) == 18
    assert data["task_info"] == {"external_task_id": "gw-1"}
    assert data["created_at"] == data["updated_at"] and data["created_at"] > 10**12  # milliseconds
    task = state.tasks[data["task_id"]]
    assert (task.owner, task.family, task.model_name, task.duration) == (ACCESS_KEY, "text2video", "kling-v3", "5")
    assert task.callback_url == "https://example.com/cb"
    recorded = state.requests[-1]
    assert recorded.path == "/v1/videos/text2video" and recorded.json["prompt"] == "A fox in the snow"
    assert recorded.headers["authorization"].startswith("Bearer ")


def _no_typ() -> str:
    return jwt.encode({"iss": ACCESS_KEY, "exp": int(time.time()) + 60, "nbf": int(time.time()) - 5},
                      SECRET_KEY, algorithm="HS256", headers={"typ": None})


def _alg_none() -> str:
    return jwt.encode({"iss": ACCESS_KEY, "exp": int(time.time()) + 60, "nbf": int(time.time()) - 5},
                      None, algorithm="none")


def _hs512() -> str:
    with warnings.catch_warnings():  # the right secret, but too short for HS512 by RFC 7518
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return make_token(algorithm="HS512")


AUTH_FAULTS = {
    "missing header": (lambda: "", 1001),
    "not bearer": (lambda: f"Basic {make_token()}", 1002),
    "bearer without token": (lambda: "Bearer ", 1002),
    "garbage token": (lambda: "Bearer not.a.jwt", 1002),
    "bad signature": (lambda: "Bearer " + make_token(secret="x" * 40), 1002),
    "other account's secret": (lambda: "Bearer " + make_token(secret=OTHER_SECRET_KEY), 1002),
    "unknown iss": (lambda: "Bearer " + make_token(access_key="ak-nobody"), 1000),
    "missing iss": (lambda: "Bearer " + make_token(iss=None), 1002),
    "expired": (lambda: "Bearer " + make_token(exp=int(time.time()) - 10, nbf=int(time.time()) - 100), 1004),
    "not yet valid": (lambda: "Bearer " + make_token(nbf=int(time.time()) + 600), 1003),
    "missing exp": (lambda: "Bearer " + make_token(exp=None), 1002),
    "missing nbf": (lambda: "Bearer " + make_token(nbf=None), 1002),
    "HS512": (lambda: "Bearer " + _hs512(), 1002),
    "alg none": (lambda: "Bearer " + _alg_none(), 1002),
    "no typ": (lambda: "Bearer " + _no_typ(), 1002),
}


@pytest.mark.parametrize("fault", list(AUTH_FAULTS))
def test_jwt_faults_are_rejected(server: ServerThread, state: FakeKlingState, fault: str) -> None:
    make_authorization, code = AUTH_FAULTS[fault]
    response = call(server, "POST", "/v1/videos/text2video", {"prompt": "x"}, authorization=make_authorization())
    assert_error(response, 401, code)
    assert state.tasks == {}
    assert len(state.requests) == 1  # rejected requests are recorded too


def test_auth_applies_to_get_and_list(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server)
    expired = make_token(exp=int(time.time()) - 1, nbf=int(time.time()) - 100)
    assert_error(call(server, "GET", f"/v1/videos/text2video/{task_id}", token=expired), 401, 1004)
    assert_error(call(server, "GET", "/v1/videos/text2video", authorization=""), 401, 1001)
    assert state.tasks[task_id].poll_count == 0


def test_no_credentials_accepts_anything() -> None:
    srv = ServerThread(create_app()).start()
    try:
        status, _, body = call(srv, "POST", "/v1/videos/text2video", {"prompt": "hi"}, authorization="Bearer junk")
        assert status == 200 and body["code"] == 0
        task = srv.app["state"].tasks[body["data"]["task_id"]]
        assert task.owner == "" and task.model_name == "kling-v1"
        status, _, body = call(srv, "POST", "/v1/videos/text2video", {"prompt": "hi"}, token=make_token("ak-x", "s" * 32))
        assert srv.app["state"].tasks[body["data"]["task_id"]].owner == "ak-x"
    finally:
        srv.stop()


# --------------------------------------------------------------------------- lifecycle


def test_text2video_happy_path(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, mode="pro", aspect_ratio="9:16", duration="10", sound="on", cfg_scale=0.5)
    first = poll(server, task_id)
    assert first["task_status"] == "processing" and "task_result" not in first
    assert first["task_status_msg"] == "" and first["task_info"] == {}
    assert poll(server, task_id)["task_status"] == "processing"
    done = poll(server, task_id)
    assert done["task_status"] == "succeed"
    assert done["updated_at"] > done["created_at"]
    [video] = done["task_result"]["videos"]
    assert set(video) == {"id", "url", "duration"}
    assert video["duration"] == "10" and isinstance(video["duration"], str)
    assert done["final_unit_deduction"] == "3.5"  # illustrative: 10 s pro
    task = state.tasks[task_id]
    assert task.status_history == ["submitted", "processing", "succeed"] and task.poll_count == 3
    # terminal: further polls change nothing
    again = poll(server, task_id)
    assert again["task_status"] == "succeed" and again["updated_at"] == done["updated_at"]
    assert task.poll_count == 3

    assert video["url"].startswith(f"http://127.0.0.1:{server.port}/")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", video["url"].split(str(server.port), 1)[1])
        resp = conn.getresponse()
        content = resp.read()
        assert resp.status == 200 and resp.getheader("Content-Type") == "video/mp4"
        assert content[4:8] == b"ftyp"
    finally:
        conn.close()


def test_image2video_happy_path_and_external_id(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, "image2video", image_tail="https://example.com/last.png", mode="pro",
                        external_task_id="gw-i2v-1", watermark_info={"enabled": True})
    assert state.tasks[task_id].family == "image2video"
    assert poll(server, "gw-i2v-1", "image2video")["task_id"] == task_id  # external id in the path
    assert poll(server, task_id, "image2video")["task_status"] == "processing"
    done = poll(server, task_id, "image2video")
    assert done["task_status"] == "succeed" and done["task_info"] == {"external_task_id": "gw-i2v-1"}
    assert done["watermark_info"] == {"enabled": True}
    assert done["task_result"]["videos"][0]["watermark_url"]
    # a task is only visible on its own family's path
    assert_error(call(server, "GET", f"/v1/videos/text2video/{task_id}"), 404, 1203)
    assert_error(call(server, "GET", "/v1/videos/image2video/123456789012345678"), 404, 1203)


def test_omni_video_v3_long_duration(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, "omni-video", duration="15", sound="on",
                        image_list=[{"image_url": "https://example.com/a.png", "type": "first_frame"}],
                        prompt="#fake:polls=0 a fox <<<image_1>>>")
    done = poll(server, task_id, "omni-video")
    assert done["task_status"] == "succeed" and done["task_result"]["videos"][0]["duration"] == "15"


def test_tasks_are_private_to_their_access_key(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server)
    other = make_token(OTHER_ACCESS_KEY, OTHER_SECRET_KEY)
    assert_error(call(server, "GET", f"/v1/videos/text2video/{task_id}", token=other), 404, 1203)
    status, _, body = call(server, "GET", "/v1/videos/text2video", token=other)
    assert status == 200 and body["data"] == []


# --------------------------------------------------------------------------- directives


def statuses(server: ServerThread, task_id: str, n: int, family: str = "text2video") -> list[str]:
    return [poll(server, task_id, family)["task_status"] for _ in range(n)]


def test_queued_and_polls(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, prompt="x #fake:queued=2 #fake:polls=1")
    assert statuses(server, task_id, 4) == ["submitted", "processing", "succeed", "succeed"]
    task_id = create_ok(server, prompt="x #fake:queued=0 #fake:polls=0")
    assert statuses(server, task_id, 1) == ["succeed"]
    assert state.tasks[task_id].status_history == ["submitted", "succeed"]


def test_fail(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, prompt="x #fake:fail")
    assert statuses(server, task_id, 2) == ["processing", "processing"]
    failed = poll(server, task_id)
    assert failed["task_status"] == "failed" and failed["task_status_msg"]
    assert "task_result" not in failed and "final_unit_deduction" not in failed


def test_hang(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, prompt="x #fake:hang")
    assert set(statuses(server, task_id, 10)) == {"processing"}
    assert state.tasks[task_id].poll_count == 10


def test_duration_override(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, duration="10", prompt="x #fake:duration=9.042 #fake:polls=0")
    video = poll(server, task_id)["task_result"]["videos"][0]
    assert video["duration"] == "9.042"


@pytest.mark.parametrize(("http_status", "code"), [(400, 1200), (401, 1000), (403, 1103), (404, 1203), (429, 1302),
                                                   (500, 5000), (503, 5001), (504, 5002), (502, 5000)])
def test_status_directive(server: ServerThread, state: FakeKlingState, http_status: int, code: int) -> None:
    assert_error(create(server, prompt=f"x #fake:status={http_status}"), http_status, code)
    assert state.tasks == {}


def test_poll_status_fails_once_then_recovers(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, prompt="x #fake:poll_status=503")
    assert_error(call(server, "GET", f"/v1/videos/text2video/{task_id}"), 503, 5001)
    assert state.tasks[task_id].poll_count == 0
    assert statuses(server, task_id, 3) == ["processing", "processing", "succeed"]


def test_rate_limit(server: ServerThread, state: FakeKlingState) -> None:
    message = assert_error(create(server, prompt="x #fake:rate_limit"), 429, 1303)
    assert message == "parallel task over resource pack limit"
    assert state.tasks == {}


@pytest.mark.parametrize("prompt", ["#fake:nope", "#fake:polls=-1", "#fake:fail=1", "#fake:status=200",
                                    "#fake:duration=0", "#fake:queued=abc"])
def test_bad_directives(server: ServerThread, state: FakeKlingState, prompt: str) -> None:
    assert_error(create(server, prompt=prompt), 400, 1201)


def test_directives_in_multi_shot_prompts(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, prompt=None, multi_shot=True, shot_type="customize",
                        multi_prompt=[{"index": 1, "prompt": "a #fake:fail", "duration": "5"}])
    assert statuses(server, task_id, 3)[-1] == "failed"


def test_max_concurrency() -> None:
    srv = ServerThread(create_app(CREDENTIALS, max_concurrency=1)).start()
    try:
        task_id = create_ok(srv, prompt="x #fake:polls=0")
        assert_error(create(srv), 429, 1303)
        assert statuses(srv, task_id, 1) == ["succeed"]
        create_ok(srv)  # the finished task freed its slot
    finally:
        srv.stop()


# --------------------------------------------------------------------------- validation


INVALID_CREATES: dict[str, tuple[str, dict[str, Any]]] = {
    "unknown model": ("text2video", {"model_name": "kling-v9"}),
    "omni model on text2video": ("text2video", {"model_name": "kling-v3-omni"}),
    "i2v-only model on text2video": ("text2video", {"model_name": "kling-v1-5"}),
    "text2video model on omni": ("omni-video", {"model_name": "kling-v3"}),
    "omni without model": ("omni-video", {"model_name": None}),
    "bad mode": ("text2video", {"mode": "ultra"}),
    "integer duration": ("text2video", {"duration": 5}),
    "7 s on kling-v2-6": ("text2video", {"model_name": "kling-v2-6", "duration": "7"}),
    "16 s on kling-v3": ("text2video", {"duration": "16"}),
    "bad aspect ratio": ("text2video", {"aspect_ratio": "4:3"}),
    "missing prompt": ("text2video", {"prompt": None}),
    "prompt too long": ("text2video", {"prompt": "a" * 2501}),
    "cfg_scale out of range": ("text2video", {"cfg_scale": 1.5}),
    "sound on old model": ("text2video", {"model_name": "kling-v1", "sound": "on"}),
    "bad sound": ("text2video", {"sound": "yes"}),
    "sound on kling-v2-6 std": ("text2video", {"model_name": "kling-v2-6", "mode": "std", "sound": "on"}),
    "image2video without image": ("image2video", {"image": None}),
    "data: prefix": ("image2video", {"image": "data:image/png;base64," + PNG_B64}),
    "not base64": ("image2video", {"image": "not an image!"}),
    "image_tail with camera_control": ("image2video", {"image_tail": PNG_B64, "camera_control": {"type": "simple"}}),
    "omni image without url": ("omni-video", {"image_list": [{"type": "first_frame"}]}),
    "omni bad image type": ("omni-video", {"image_list": [{"image_url": "https://x/a.png", "type": "middle"}]}),
    "callback_url not a string": ("text2video", {"callback_url": 1}),
}


@pytest.mark.parametrize("case", list(INVALID_CREATES))
def test_invalid_creates(server: ServerThread, state: FakeKlingState, case: str) -> None:
    family, fields = INVALID_CREATES[case]
    assert_error(create(server, family, **fields), 400, 1201)
    assert state.tasks == {}


def test_messages_name_field_and_allowed_values(server: ServerThread, state: FakeKlingState) -> None:
    message = assert_error(create(server, model_name="kling-v2-6", duration="7"), 400, 1201)
    assert "duration" in message and '"5" or "10"' in message
    message = assert_error(create(server, mode="ultra"), 400, 1201)
    assert "mode" in message and "std, pro" in message


def test_body_must_be_json_object(server: ServerThread, state: FakeKlingState) -> None:
    assert_error(call(server, "POST", "/v1/videos/text2video", raw=b"{nope"), 400, 1200)
    assert_error(call(server, "POST", "/v1/videos/text2video", ["a"]), 400, 1200)
    assert state.requests[0].json is None and state.requests[0].raw == b"{nope"


def test_defaults_and_accepted_variants(server: ServerThread, state: FakeKlingState) -> None:
    task_id = create_ok(server, model_name=None, duration=None, mode=None)
    task = state.tasks[task_id]
    assert (task.model_name, task.duration, task.mode) == ("kling-v1", "5", "std")
    create_ok(server, duration="3")  # kling-v3 allows 3-15
    create_ok(server, "image2video", image=None, image_tail="https://example.com/last.jpg")
    create_ok(server, "image2video", model_name="kling-v2-1", prompt=None)


def test_external_task_id_is_unique_per_account(server: ServerThread, state: FakeKlingState) -> None:
    create_ok(server, external_task_id="dup")
    assert_error(create(server, external_task_id="dup"), 400, 1201)
    status, _, body = call(server, "POST", "/v1/videos/text2video",
                           {"prompt": "x", "external_task_id": "dup"}, token=make_token(OTHER_ACCESS_KEY, OTHER_SECRET_KEY))
    assert status == 200


def test_models_override() -> None:
    srv = ServerThread(create_app(CREDENTIALS, models=["kling-v3", "my-custom-model"])).start()
    try:
        assert_error(create(srv, model_name="kling-v1"), 400, 1201)
        create_ok(srv, model_name="kling-v3")
        create_ok(srv, model_name="my-custom-model", duration="10")
        assert_error(create(srv, "omni-video", model_name="my-custom-model"), 400, 1201)
    finally:
        srv.stop()


# --------------------------------------------------------------------------- list and routing


def test_list_is_paginated_newest_first_and_does_not_advance(server: ServerThread, state: FakeKlingState) -> None:
    ids = [create_ok(server, prompt=f"video {i}") for i in range(3)]
    create_ok(server, "image2video")
    status, _, body = call(server, "GET", "/v1/videos/text2video")
    assert status == 200 and body["code"] == 0
    assert [t["task_id"] for t in body["data"]] == ids[::-1]
    assert all(t["task_status"] == "submitted" for t in body["data"])
    assert all(state.tasks[i].poll_count == 0 for i in ids)
    _, _, page = call(server, "GET", "/v1/videos/text2video?pageNum=2&pageSize=2")
    assert [t["task_id"] for t in page["data"]] == [ids[0]]
    _, _, i2v = call(server, "GET", "/v1/videos/image2video?pageNum=1&pageSize=500")
    assert len(i2v["data"]) == 1
    for query in ("pageSize=0", "pageSize=501", "pageNum=0", "pageNum=1001", "pageNum=x"):
        assert_error(call(server, "GET", f"/v1/videos/text2video?{query}"), 400, 1201)


def test_unknown_routes(server: ServerThread, state: FakeKlingState) -> None:
    assert_error(call(server, "POST", "/v1/videos/text-to-video/kling-3.0", {}), 404, 1203)
    assert_error(call(server, "DELETE", "/v1/videos/text2video/123"), 404, 1202)
    status, _, _ = call(server, "GET", "/fake-media/kling/123.mp4")
    assert status == 404
