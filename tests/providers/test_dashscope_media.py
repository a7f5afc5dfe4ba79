"""The DashScope (Wan) video adapter: request mapping (exact JSON), task states, errors, and round trips
over real HTTP against the fake DashScope upstream (which checks the async header and the size tables)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from tests.support.servers import ServerThread
from tokenhub.errors import GatewayError, InvalidRequest, RateLimited, ServiceUnavailable, UpstreamError
from tokenhub.providers.base import UpstreamRequest
from tokenhub.providers.media.base import TERMINAL_STATES, MediaInput, TaskUpdate, VideoJob
from tokenhub.providers.media.dashscope import DashScopeVideoAdapter
from tokenhub.simulator.dashscope import FAIL_CODE, FAIL_MESSAGE, FakeDashScopeState, create_app
from tokenhub.upstream import Channel

API_KEY = "sk-dashscope-adapter-test"
BASE = "https://dashscope-intl.aliyuncs.com/api/v1"
FIRST = MediaInput("image", "https://example.com/first.png", "first_frame")
adapter = DashScopeVideoAdapter()


def channel(base_url: str = BASE, key: str = API_KEY) -> Channel:
    return Channel(id=3, name="wan", provider="dashscope", protocol="dashscope", base_url=base_url, api_key=key,
                   priority=0, weight=1)


def job(**kw: Any) -> VideoJob:
    fields: dict[str, Any] = {"prompt": "A kitten in the moonlight", "duration": 5, "resolution": "1080p",
                              "aspect_ratio": "16:9"}
    fields.update(kw)
    return VideoJob(**fields)


# --------------------------------------------------------------------------- request mapping


def test_text2video_exact_request() -> None:
    req = adapter.build_submit(job(negative_prompt="low quality", seed=12345), "wan2.2-t2v-plus", channel())
    assert req.url == f"{BASE}/services/aigc/video-generation/video-synthesis"
    assert req.headers == {
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-DashScope-Async": "enable",
    }
    assert orjson.loads(req.body) == {
        "model": "wan2.2-t2v-plus",
        "input": {"prompt": "A kitten in the moonlight", "negative_prompt": "low quality"},
        "parameters": {"size": "1920*1080", "duration": 5, "prompt_extend": False, "seed": 12345},
    }


@pytest.mark.parametrize(
    ("resolution", "aspect_ratio", "size"),
    [("480p", "16:9", "832*480"), ("480p", "9:16", "480*832"), ("480p", "1:1", "624*624"),
     ("720p", "16:9", "1280*720"), ("720p", "3:4", "832*1088"), ("1080p", "9:16", "1080*1920"),
     ("1080p", "1:1", "1440*1440"), ("1080p", "4:3", "1632*1248"), ("1080p", "3:4", "1248*1632")],
)
def test_size_table(resolution: str, aspect_ratio: str, size: str) -> None:
    req = adapter.build_submit(job(resolution=resolution, aspect_ratio=aspect_ratio), "wan2.5-t2v-preview", channel())
    assert orjson.loads(req.body)["parameters"]["size"] == size


def test_size_outside_the_table_is_refused_naming_the_allowed_values() -> None:
    with pytest.raises(InvalidRequest) as info:
        adapter.build_submit(job(resolution="480p", aspect_ratio="4:3"), "wan2.2-t2v-plus", channel())
    assert info.value.param == "aspect_ratio" and "16:9, 9:16, 1:1" in info.value.message
    with pytest.raises(InvalidRequest) as info:
        adapter.build_submit(job(resolution="4k"), "wan2.2-t2v-plus", channel())
    assert info.value.param == "resolution"


def test_image2video_exact_body() -> None:
    req = adapter.build_submit(job(inputs=(FIRST,), resolution="480p", aspect_ratio="9:16", generate_audio=True),
                               "wan2.5-i2v-preview", channel())
    assert orjson.loads(req.body) == {
        "model": "wan2.5-i2v-preview",
        "input": {"prompt": "A kitten in the moonlight", "img_url": "https://example.com/first.png"},
        "parameters": {"resolution": "480P", "duration": 5, "prompt_extend": False, "audio": True},
    }


def test_t2v_model_with_a_first_frame_goes_to_its_i2v_sibling() -> None:
    data_url = "data:image/png;base64,iVBORw0KGgo="
    body = orjson.loads(adapter.build_submit(job(inputs=(MediaInput("image", data_url, "first_frame"),)),
                                             "wan2.2-t2v-plus", channel()).body)
    assert body["model"] == "wan2.2-i2v-plus"
    assert body["input"]["img_url"] == data_url and body["parameters"]["resolution"] == "1080P"
    assert "size" not in body["parameters"]


@pytest.mark.parametrize(
    ("model", "inputs", "needle"),
    [
        ("wan2.2-i2v-plus", (), "needs a first_frame"),
        ("wan2.2-i2v-plus", (FIRST, MediaInput("image", "https://example.com/l.png", "last_frame")), "last_frame"),
        ("wan2.2-t2v-plus", (MediaInput("image", "https://example.com/r.png", "reference_image"),), "reference_image"),
        ("wan2.5-t2v-preview", (MediaInput("audio", "https://example.com/a.mp3", "reference_audio"),), "reference_audio"),
    ],
)
def test_unsupported_inputs_are_refused(model: str, inputs: tuple[MediaInput, ...], needle: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        adapter.build_submit(job(inputs=inputs), model, channel())
    assert needle in info.value.message and info.value.param == "content"


def test_poll_is_a_get() -> None:
    req = adapter.build_poll("0385dc79-5ff8-4d82-bcb6-000000000000", job(), channel(), upstream_model="wan2.2-t2v-plus")
    assert req.url == f"{BASE}/tasks/0385dc79-5ff8-4d82-bcb6-000000000000"
    assert req.body == b""
    assert req.headers == {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"}


# --------------------------------------------------------------------------- responses


def test_parse_submit() -> None:
    body = orjson.dumps({"request_id": "r", "output": {"task_id": "0385dc79", "task_status": "PENDING"}})
    assert adapter.parse_submit(body) == "0385dc79"
    for bad in (b"{}", b"nope", orjson.dumps({"output": {"task_status": "PENDING"}})):
        with pytest.raises(UpstreamError) as info:
            adapter.parse_submit(bad)
        assert info.value.code == "upstream_bad_response"


def task(status: str, **output: Any) -> dict[str, Any]:
    return {"request_id": "r", "output": {"task_id": "t-1", "task_status": status, **output}}


URL = "https://dashscope-result.oss.example/x.mp4?Expires=1&Signature=s"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (task("PENDING", submit_time="2025-07-27 21:05:15.212"), TaskUpdate("queued", raw_status="PENDING")),
        (task("RUNNING"), TaskUpdate("running", raw_status="RUNNING")),
        (task("SUSPENDED"), TaskUpdate("running", raw_status="SUSPENDED")),
        (
            {**task("SUCCEEDED", video_url=URL), "usage": {"video_duration": 5, "video_count": 1, "SR": 1080}},
            TaskUpdate("succeeded", video_url=URL, duration=Decimal(5), raw_status="SUCCEEDED"),
        ),
        (
            {**task("SUCCEEDED", video_url=URL), "usage": {"duration": 4.5}},
            TaskUpdate("succeeded", video_url=URL, duration=Decimal("4.5"), raw_status="SUCCEEDED"),
        ),
        (task("SUCCEEDED", video_url=URL), TaskUpdate("succeeded", video_url=URL, raw_status="SUCCEEDED")),
        (
            task("FAILED", code="DataInspectionFailed", message="Output data may contain inappropriate content."),
            TaskUpdate("failed", error={"code": "DataInspectionFailed",
                                        "message": "Output data may contain inappropriate content."}, raw_status="FAILED"),
        ),
        (
            task("FAILED"),
            TaskUpdate("failed", error={"code": "upstream_task_failed", "message": "The upstream provider failed the task."},
                       raw_status="FAILED"),
        ),
        (
            task("CANCELED"),
            TaskUpdate("cancelled", error={"code": "upstream_task_cancelled",
                                           "message": "The upstream provider cancelled the task."}, raw_status="CANCELED"),
        ),
    ],
)
def test_parse_poll_states(body: dict[str, Any], expected: TaskUpdate) -> None:
    assert adapter.parse_poll(orjson.dumps(body)) == expected


def test_unknown_is_expired() -> None:
    update = adapter.parse_poll(orjson.dumps(task("UNKNOWN")))
    assert update.state == "expired" and update.raw_status == "UNKNOWN"
    assert update.error is not None and update.error["code"] == "upstream_task_expired" and "24 hours" in update.error["message"]


@pytest.mark.parametrize("body", [task("WHATEVER"), task("SUCCEEDED"), {"request_id": "r"}, []])
def test_parse_poll_rejects_nonsense(body: Any) -> None:
    with pytest.raises(UpstreamError) as info:
        adapter.parse_poll(orjson.dumps(body))
    assert info.value.code == "upstream_bad_response"


def ds_error(code: str, message: str) -> bytes:
    return orjson.dumps({"request_id": "r", "code": code, "message": message})


@pytest.mark.parametrize(
    ("status", "code", "cls", "our_code", "our_status"),
    [
        (401, "InvalidApiKey", UpstreamError, "upstream_auth_failed", 502),
        (403, "AccessDenied", UpstreamError, "upstream_auth_failed", 502),
        (400, "Arrearage", UpstreamError, "upstream_auth_failed", 502),
        (429, "Throttling", RateLimited, "upstream_rate_limited", 429),
        (400, "InvalidParameter", InvalidRequest, "upstream_bad_request", 400),
        (400, "DataInspectionFailed", InvalidRequest, "upstream_bad_request", 400),
        (404, "InvalidParameter", UpstreamError, "upstream_model_not_found", 502),
        (503, "ServiceUnavailable", ServiceUnavailable, "upstream_overloaded", 503),
        (500, "InternalError", UpstreamError, "upstream_error", 502),
    ],
)
def test_error_mapping(status: int, code: str, cls: type[GatewayError], our_code: str, our_status: int) -> None:
    err = adapter.error(status, ds_error(code, "the vendor says no"), channel(), "3")
    assert type(err) is cls and err.code == our_code and err.status == our_status
    if cls is InvalidRequest:
        assert f"the vendor says no ({code})" in err.message
    if cls is RateLimited:
        assert err.headers == {"Retry-After": "3"}


def test_error_redacts_and_reads_non_json() -> None:
    err = adapter.error(400, ds_error("InvalidParameter", f"bad key {API_KEY}"), channel(), None)
    assert API_KEY not in err.message
    err = adapter.error(502, b"upstream connect error", channel(), None)
    assert err.code == "upstream_error" and "upstream connect error" in err.message


# --------------------------------------------------------------------------- over real HTTP


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


def base(server: ServerThread) -> Channel:
    return channel(f"{server.url}/api/v1")


def send(req: UpstreamRequest) -> tuple[int, bytes, str | None]:
    """What the relay does: a GET when the body is empty, else a POST."""
    parts = urlsplit(req.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET" if req.body == b"" else "POST", parts.path, body=req.body or None, headers=req.headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Retry-After")
    finally:
        conn.close()


def run_task(server: ServerThread, the_job: VideoJob, model: str) -> tuple[str, list[TaskUpdate]]:
    ch = base(server)
    status, body, _ = send(adapter.build_submit(the_job, model, ch))
    assert status == 200, body
    task_id = adapter.parse_submit(body)
    updates: list[TaskUpdate] = []
    for _ in range(10):
        status, body, _ = send(adapter.build_poll(task_id, the_job, ch))
        assert status == 200, body
        updates.append(adapter.parse_poll(body))
        if updates[-1].state in TERMINAL_STATES:
            break
    return task_id, updates


def fetch(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_text2video_round_trip(server: ServerThread, state: FakeDashScopeState) -> None:
    task_id, updates = run_task(server, job(seed=7, negative_prompt="blur"), "wan2.2-t2v-plus")
    assert [u.state for u in updates] == ["queued", "running", "running", "succeeded"]
    assert updates[-1].duration == Decimal(5) and updates[-1].video_url
    status, video = fetch(updates[-1].video_url)
    assert status == 200 and video.startswith(b"\x00\x00\x00\x18ftyp")
    record = state.tasks[task_id]
    assert (record.size, record.prompt_extend, record.duration) == ("1920*1080", False, 5)
    create = state.requests[0]
    assert create.headers["X-DashScope-Async"] == "enable" and create.headers["Authorization"] == f"Bearer {API_KEY}"
    assert [(r.method, r.path) for r in state.requests[1:5]] == [("GET", f"/api/v1/tasks/{task_id}")] * 4


def test_image2video_round_trip_with_reported_duration(server: ServerThread, state: FakeDashScopeState) -> None:
    the_job = job(prompt="Waves #fake:duration=3 #fake:queued=0", inputs=(FIRST,), resolution="480p")
    task_id, updates = run_task(server, the_job, "wan2.2-t2v-plus")  # sent to wan2.2-i2v-plus
    assert [u.state for u in updates] == ["running", "running", "succeeded"]
    assert updates[-1].duration == Decimal(3)
    assert (state.tasks[task_id].model, state.tasks[task_id].resolution) == ("wan2.2-i2v-plus", "480P")


@pytest.mark.parametrize(
    ("directive", "expected"),
    [
        ("#fake:fail", TaskUpdate("failed", error={"code": FAIL_CODE, "message": FAIL_MESSAGE}, raw_status="FAILED")),
        ("#fake:cancel_upstream", TaskUpdate("cancelled", error={"code": "upstream_task_cancelled",
                                                                 "message": "The upstream provider cancelled the task."},
                                             raw_status="CANCELED")),
    ],
)
def test_failed_and_cancelled(server: ServerThread, state: FakeDashScopeState, directive: str, expected: TaskUpdate) -> None:
    _, updates = run_task(server, job(prompt=f"Cat {directive}"), "wan2.2-t2v-plus")
    assert updates[-1] == expected


def test_unknown_task_is_expired(server: ServerThread, state: FakeDashScopeState) -> None:
    _, updates = run_task(server, job(prompt="Cat #fake:unknown #fake:polls=0"), "wan2.2-t2v-plus")
    assert [u.state for u in updates] == ["queued", "expired"]
    status, body, _ = send(adapter.build_poll("no-such-task", job(), base(server)))
    assert status == 200 and adapter.parse_poll(body).state == "expired"


def test_upstream_rejects_a_size_the_model_lacks(server: ServerThread, state: FakeDashScopeState) -> None:
    ch = base(server)
    status, body, _ = send(adapter.build_submit(job(resolution="720p"), "wan2.2-t2v-plus", ch))
    err = adapter.error(status, body, ch, None)
    assert status == 400 and isinstance(err, InvalidRequest) and "832*480" in err.message


def test_throttling_and_poll_errors(server: ServerThread, state: FakeDashScopeState) -> None:
    ch = base(server)
    status, body, retry_after = send(adapter.build_submit(job(prompt="Cat #fake:status=429"), "wan2.2-t2v-plus", ch))
    assert status == 429 and isinstance(adapter.error(status, body, ch, retry_after), RateLimited)
    the_job = job(prompt="Cat #fake:poll_status=503")
    status, body, _ = send(adapter.build_submit(the_job, "wan2.2-t2v-plus", ch))
    task_id = adapter.parse_submit(body)
    status, body, retry_after = send(adapter.build_poll(task_id, the_job, ch))
    assert status == 503 and isinstance(adapter.error(status, body, ch, retry_after), ServiceUnavailable)
    status, body, _ = send(adapter.build_poll(task_id, the_job, ch))
    assert status == 200 and adapter.parse_poll(body).state == "queued"


def test_bad_key_is_an_upstream_auth_failure(server: ServerThread, state: FakeDashScopeState) -> None:
    ch = channel(f"{server.url}/api/v1", key="sk-wrong-key")
    status, body, _ = send(adapter.build_submit(job(), "wan2.2-t2v-plus", ch))
    err = adapter.error(status, body, ch, None)
    assert status == 401 and err.code == "upstream_auth_failed" and err.status == 502
    assert state.tasks == {}
