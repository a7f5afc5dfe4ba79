"""The fake DashScope (Wan video) upstream, exercised over real HTTP."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.servers import ServerThread
from tokenhub.simulator.dashscope import STATE_KEY, FakeDashScopeState, create_app

API_KEY = "sk-test"
CREATE = "/api/v1/services/aigc/video-generation/video-synthesis"
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IMG = "https://example.com/first_frame.png"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(create_app(api_keys={API_KEY})).start()
    yield srv
    srv.stop()


@pytest.fixture
def state(server: ServerThread) -> FakeDashScopeState:
    st: FakeDashScopeState = server.app["state"]
    st.reset()
    return st


def request(server: ServerThread, method: str, path: str, body: Any = None, *, api_key: str | None = API_KEY,
            async_header: str | None = "enable") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    if async_header is not None and method == "POST":
        headers["X-DashScope-Async"] = async_header
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def create(server: ServerThread, body: Any, **kw: Any) -> tuple[int, Any]:
    status, _, data = request(server, "POST", CREATE, body, **kw)
    return status, json.loads(data)


def poll(server: ServerThread, task_id: str, **kw: Any) -> tuple[int, Any]:
    status, _, data = request(server, "GET", f"/api/v1/tasks/{task_id}", **kw)
    return status, json.loads(data)


def t2v(prompt: str = "A kitten running in the moonlight", **parameters: Any) -> dict[str, Any]:
    return {"model": "wan2.2-t2v-plus", "input": {"prompt": prompt}, "parameters": parameters}


def i2v(prompt: str | None = "The flowers sway", img_url: str | None = IMG, **parameters: Any) -> dict[str, Any]:
    input_: dict[str, Any] = {}
    if prompt is not None:
        input_["prompt"] = prompt
    if img_url is not None:
        input_["img_url"] = img_url
    return {"model": "wan2.2-i2v-plus", "input": input_, "parameters": parameters}


def submit(server: ServerThread, body: dict[str, Any]) -> str:
    status, data = create(server, body)
    assert status == 200, data
    return data["output"]["task_id"]


def statuses(server: ServerThread, task_id: str, n: int) -> list[str]:
    return [poll(server, task_id)[1]["output"]["task_status"] for _ in range(n)]


def assert_error(status: int, body: Any, want_status: int, code: str, message: str | None = None) -> None:
    assert status == want_status, body
    assert set(body) == {"request_id", "code", "message"}
    assert body["code"] == code and UUID_RE.match(body["request_id"])
    if message is not None:
        assert body["message"] == message


# --------------------------------------------------------------------------- happy paths


def test_t2v_happy_path(server: ServerThread, state: FakeDashScopeState) -> None:
    status, body = create(server, t2v(negative_prompt="blurry", seed=42, watermark=False))
    assert status == 200
    assert list(body) == ["output", "request_id"] and UUID_RE.match(body["request_id"])
    assert body["output"]["task_status"] == "PENDING" and UUID_RE.match(body["output"]["task_id"])
    task_id = body["output"]["task_id"]

    _, pending = poll(server, task_id)
    out = pending["output"]
    assert out["task_status"] == "PENDING" and out["task_id"] == task_id and TIME_RE.match(out["submit_time"])
    assert "scheduled_time" not in out and "usage" not in pending

    _, running = poll(server, task_id)
    assert running["output"]["task_status"] == "RUNNING" and TIME_RE.match(running["output"]["scheduled_time"])
    assert poll(server, task_id)[1]["output"]["task_status"] == "RUNNING"

    _, done = poll(server, task_id)
    out = done["output"]
    assert out["task_status"] == "SUCCEEDED"
    assert all(TIME_RE.match(out[k]) for k in ("submit_time", "scheduled_time", "end_time"))
    assert out["orig_prompt"] == "A kitten running in the moonlight"
    assert out["actual_prompt"].startswith("A kitten running in the moonlight ")
    assert done["usage"] == {"video_duration": 5, "video_ratio": "1920*1080", "video_count": 1, "SR": 1080}

    url = urlsplit(out["video_url"])
    assert url.path == f"/dashscope-result/{task_id}.mp4" and "Expires=" in url.query and "Signature=" in url.query
    vstatus, vheaders, video = request(server, "GET", f"{url.path}?{url.query}", api_key=None)
    assert vstatus == 200 and vheaders["content-type"] == "video/mp4" and video

    # terminal states stay put
    assert poll(server, task_id)[1]["output"]["task_status"] == "SUCCEEDED"
    record = state.tasks[task_id]
    assert record.history == ["PENDING", "PENDING", "RUNNING", "RUNNING", "SUCCEEDED", "SUCCEEDED"]
    assert record.polls == 5 and record.model == "wan2.2-t2v-plus"
    assert server.app[STATE_KEY] is state

    recorded = state.requests[0]
    assert recorded.method == "POST" and recorded.path == CREATE
    assert recorded.headers["x-dashscope-async"] == "enable" and recorded.headers["Authorization"] == f"Bearer {API_KEY}"
    assert recorded.json["parameters"]["seed"] == 42


def test_i2v_happy_path(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, i2v(resolution="480P", prompt_extend=False))
    assert statuses(server, task_id, 4) == ["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"]
    _, done = poll(server, task_id)
    assert done["output"]["orig_prompt"] == "The flowers sway" and "actual_prompt" not in done["output"]
    assert done["usage"] == {"video_duration": 5, "video_ratio": "standard", "video_count": 1, "SR": 480}

    # prompt is optional for i2v; the default tier is 1080P
    task_id = submit(server, i2v(prompt=None))
    for _ in range(4):
        _, done = poll(server, task_id)
    assert done["output"]["task_status"] == "SUCCEEDED" and "orig_prompt" not in done["output"]
    assert done["usage"]["SR"] == 1080


def test_unknown_task_id(server: ServerThread, state: FakeDashScopeState) -> None:
    status, body = poll(server, "00000000-0000-0000-0000-000000000000")
    assert status == 200
    assert body["output"] == {"task_id": "00000000-0000-0000-0000-000000000000", "task_status": "UNKNOWN"}
    assert UUID_RE.match(body["request_id"])


def test_video_of_unfinished_task_is_404(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, t2v())
    assert request(server, "GET", f"/dashscope-result/{task_id}.mp4", api_key=None)[0] == 404


# --------------------------------------------------------------------------- async header and auth


@pytest.mark.parametrize("header", [None, "disable", ""])
def test_async_header_required(server: ServerThread, state: FakeDashScopeState, header: str | None) -> None:
    status, body = create(server, t2v(), async_header=header)
    assert_error(status, body, 403, "AccessDenied", "current user api does not support synchronous calls")
    assert state.tasks == {}


def test_auth(server: ServerThread, state: FakeDashScopeState) -> None:
    status, body = create(server, t2v(), api_key=None)
    assert_error(status, body, 401, "InvalidApiKey", "No API-key provided.")
    status, body = create(server, t2v(), api_key="sk-wrong")
    assert_error(status, body, 401, "InvalidApiKey", "Invalid API-key provided.")
    status, body = poll(server, "whatever", api_key="sk-wrong")
    assert_error(status, body, 401, "InvalidApiKey", "Invalid API-key provided.")
    assert len(state.requests) == 3  # rejected requests are recorded too


def test_no_keys_accepts_everything() -> None:
    srv = ServerThread(create_app(models=["wan2.2-t2v-plus"])).start()
    try:
        status, _ = create(srv, t2v(), api_key=None)
        assert status == 200
        status, body = create(srv, i2v())
        assert_error(status, body, 404, "InvalidParameter", "Model not exist.")
    finally:
        srv.stop()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("body", "status", "code", "message"), [
    (b"{not json", 400, "InvalidParameter", None),
    ({"input": {"prompt": "x"}}, 400, "BadRequest.EmptyModel", None),
    ({"model": "wan9-t2v", "input": {"prompt": "x"}}, 404, "InvalidParameter", "Model not exist."),
    ({"model": "wan2.2-t2v-plus"}, 400, "BadRequest.EmptyInput", None),
    ({"model": "wan2.2-t2v-plus", "input": {"negative_prompt": "x"}}, 400, "InvalidParameter",
     "Field required: input.prompt"),
    (i2v(img_url=None), 400, "InvalidParameter", "Field required: input.img_url"),
    (t2v(size="1920x1080"), 400, "InvalidParameter",
     "The size does not match the allowed size 832*480,480*832,624*624,1920*1080,1080*1920,1440*1440,"
     "1632*1248,1248*1632."),
    (t2v(size="1280*720"), 400, "InvalidParameter", None),  # a 720P size: not offered by wan2.2-t2v-plus
    (i2v(resolution="720P"), 400, "InvalidParameter",
     "The resolution does not match the allowed resolution 480P,1080P."),
    (t2v(duration=10), 400, "InvalidParameter", "The duration does not match the allowed duration 5."),
    (i2v(duration="5"), 400, "InvalidParameter", None),
    (t2v(prompt_extend="yes"), 400, "InvalidParameter", None),
    (t2v(seed=-1), 400, "InvalidParameter", None),
    (t2v("#fake:nonsense"), 400, "InvalidParameter", "Unknown fake directive '#fake:nonsense'."),
    (t2v("#fake:polls=x"), 400, "InvalidParameter", None),
])
def test_validation(server: ServerThread, state: FakeDashScopeState, body: Any, status: int, code: str,
                    message: str | None) -> None:
    got_status, got = create(server, body)
    assert_error(got_status, got, status, code, message)
    assert state.tasks == {}


def test_other_models(server: ServerThread, state: FakeDashScopeState) -> None:
    body = {"model": "wan2.5-t2v-preview", "input": {"prompt": "x"}, "parameters": {"size": "1280*720", "duration": 10}}
    task_id = submit(server, body)
    for _ in range(4):
        _, done = poll(server, task_id)
    assert done["usage"] == {"video_duration": 10, "video_ratio": "1280*720", "video_count": 1, "SR": 720}
    body = {"model": "wan2.2-i2v-flash", "input": {"img_url": IMG}}
    assert create(server, body)[0] == 200


def test_unknown_route(server: ServerThread, state: FakeDashScopeState) -> None:
    status, _, data = request(server, "POST", "/api/v1/services/aigc/nothing", t2v())
    assert_error(status, json.loads(data), 404, "NotFound")


# --------------------------------------------------------------------------- directives


def test_queued_and_polls(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, t2v("cat #fake:queued=3 #fake:polls=1"))
    assert statuses(server, task_id, 5) == ["PENDING"] * 3 + ["RUNNING", "SUCCEEDED"]
    task_id = submit(server, t2v("cat #fake:queued=0 #fake:polls=0"))
    assert statuses(server, task_id, 1) == ["SUCCEEDED"]


def test_fail(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, t2v("cat #fake:fail"))
    assert statuses(server, task_id, 3) == ["PENDING", "RUNNING", "RUNNING"]
    _, body = poll(server, task_id)
    out = body["output"]
    assert out["task_status"] == "FAILED" and out["code"] == "DataInspectionFailed" and out["message"]
    assert TIME_RE.match(out["end_time"]) and "video_url" not in out and "usage" not in body


def test_cancel_upstream(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, t2v("cat #fake:cancel_upstream"))
    assert statuses(server, task_id, 3) == ["PENDING", "CANCELED", "CANCELED"]
    _, body = poll(server, task_id)
    assert "usage" not in body and "video_url" not in body["output"] and "end_time" in body["output"]


def test_unknown(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, t2v("cat #fake:unknown #fake:polls=1"))
    assert statuses(server, task_id, 2) == ["PENDING", "RUNNING"]
    _, body = poll(server, task_id)
    assert body["output"] == {"task_id": task_id, "task_status": "UNKNOWN"}


def test_hang(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, t2v("cat #fake:hang"))
    assert statuses(server, task_id, 8) == ["PENDING"] + ["RUNNING"] * 7


def test_reported_duration(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, i2v("sway #fake:duration=3 #fake:queued=0 #fake:polls=0"))
    _, body = poll(server, task_id)
    assert body["output"]["task_status"] == "SUCCEEDED" and body["usage"]["video_duration"] == 3
    assert state.tasks[task_id].duration == 5


@pytest.mark.parametrize(("code", "error_code"), [
    (400, "InvalidParameter"), (401, "InvalidApiKey"), (429, "Throttling"), (500, "InternalError"),
])
def test_create_status(server: ServerThread, state: FakeDashScopeState, code: int, error_code: str) -> None:
    status, body = create(server, t2v(f"cat #fake:status={code}"))
    assert_error(status, body, code, error_code)
    assert state.tasks == {}


def test_poll_status_then_recovers(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id = submit(server, t2v("cat #fake:poll_status=503 #fake:polls=1"))
    status, body = poll(server, task_id)
    assert_error(status, body, 503, "ServiceUnavailable")
    status, body = poll(server, task_id)  # recovers at once
    assert status == 200 and body["output"]["task_status"] == "PENDING"
    assert statuses(server, task_id, 2) == ["RUNNING", "SUCCEEDED"]
    record = state.tasks[task_id]
    assert record.failed_polls == 1 and record.polls == 3


def test_reset(server: ServerThread, state: FakeDashScopeState) -> None:
    submit(server, t2v())
    assert state.tasks and state.requests
    state.reset()
    assert state.tasks == {} and state.requests == []
