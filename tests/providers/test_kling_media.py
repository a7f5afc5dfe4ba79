"""The Kling video adapter: request mapping (exact JSON, real HS256 JWTs decoded with PyJWT), task
states, errors, and round trips over real HTTP against the fake Kling upstream (which verifies the JWT)."""

from __future__ import annotations

import base64
import http.client
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import jwt
import orjson
import pytest

from tests.support.servers import ServerThread
from tokenhub.errors import GatewayError, InvalidRequest, RateLimited, ServiceUnavailable, UpstreamError
from tokenhub.providers.base import UpstreamRequest
from tokenhub.providers.media.base import TERMINAL_STATES, MediaInput, TaskUpdate, VideoJob
from tokenhub.providers.media.kling import KlingVideoAdapter, family_of
from tokenhub.simulator.kling import FAIL_MESSAGE, FakeKlingState, create_app
from tokenhub.upstream import Channel

ACCESS_KEY = "ak-adapter-0123456789"
SECRET_KEY = "sk-adapter-0123456789abcdef0123456789abcdef"
NOW = 1_760_000_000.75
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 24).decode()
FIRST = MediaInput("image", "https://example.com/first.png", "first_frame")
LAST = MediaInput("image", "https://example.com/last.png", "last_frame")


def channel(base_url: str = "https://api-singapore.klingai.com", key: str = f"{ACCESS_KEY}:{SECRET_KEY}") -> Channel:
    return Channel(id=7, name="kling", provider="kling", protocol="kling", base_url=base_url, api_key=key, priority=0, weight=1)


def job(**kw: Any) -> VideoJob:
    fields: dict[str, Any] = {"prompt": "A fox in the snow", "duration": 5, "resolution": "720p", "aspect_ratio": "16:9"}
    fields.update(kw)
    return VideoJob(**fields)


fixed = KlingVideoAdapter(now=lambda: NOW)


def claims_of(req: UpstreamRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    scheme, _, token = req.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, SECRET_KEY, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    return header, claims


# --------------------------------------------------------------------------- request mapping


def test_text2video_exact_body_headers_and_jwt() -> None:
    req = fixed.build_submit(job(negative_prompt="blurry", mode="pro"), "kling-v3", channel())
    assert req.url == "https://api-singapore.klingai.com/v1/videos/text2video"
    assert orjson.loads(req.body) == {
        "model_name": "kling-v3",
        "prompt": "A fox in the snow",
        "negative_prompt": "blurry",
        "mode": "pro",
        "aspect_ratio": "16:9",
        "duration": "5",
    }
    assert set(req.headers) == {"Authorization", "Accept", "Content-Type"}
    assert req.headers["Content-Type"] == "application/json"
    header, claims = claims_of(req)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert claims == {"iss": ACCESS_KEY, "exp": int(NOW) + 1800, "nbf": int(NOW) - 5}


def test_defaults_std_mode_no_sound_field() -> None:
    body = orjson.loads(fixed.build_submit(job(duration=10, aspect_ratio="9:16"), "kling-v2-5-turbo", channel()).body)
    assert body == {"model_name": "kling-v2-5-turbo", "prompt": "A fox in the snow", "mode": "std",
                    "aspect_ratio": "9:16", "duration": "10"}


def test_image2video_first_and_last_frame_data_url_stripped_audio_on() -> None:
    first = MediaInput("image", f"data:image/png;base64,{PNG_B64}", "first_frame")
    req = fixed.build_submit(job(inputs=(first, LAST), generate_audio=True, mode="pro"), "kling-v2-6", channel())
    assert req.url.endswith("/v1/videos/image2video")
    assert orjson.loads(req.body) == {
        "model_name": "kling-v2-6",
        "prompt": "A fox in the snow",
        "mode": "pro",
        "duration": "5",
        "sound": "on",
        "image": PNG_B64,
        "image_tail": "https://example.com/last.png",
    }


def test_omni_image_list_video_list_no_negative_prompt() -> None:
    inputs = (
        FIRST,
        MediaInput("image", "https://example.com/ref.png", "reference_image"),
        MediaInput("video", "https://example.com/ref.mp4", "reference_video"),
        LAST,
    )
    req = fixed.build_submit(job(inputs=inputs, negative_prompt="blurry", duration=8), "kling-v3-omni", channel())
    assert req.url.endswith("/v1/videos/omni-video")
    assert orjson.loads(req.body) == {
        "model_name": "kling-v3-omni",
        "prompt": "A fox in the snow",
        "mode": "std",
        "duration": "8",
        "image_list": [
            {"image_url": "https://example.com/first.png", "type": "first_frame"},
            {"image_url": "https://example.com/ref.png"},
            {"image_url": "https://example.com/last.png", "type": "end_frame"},
        ],
        "video_list": [{"video_url": "https://example.com/ref.mp4", "refer_type": "feature"}],
    }


def test_omni_without_first_frame_sends_aspect_ratio() -> None:
    body = orjson.loads(fixed.build_submit(job(aspect_ratio="1:1"), "kling-video-o1", channel()).body)
    assert body["aspect_ratio"] == "1:1" and "image_list" not in body


@pytest.mark.parametrize(
    ("model", "item"),
    [
        ("kling-v3", MediaInput("image", "https://example.com/r.png", "reference_image")),
        ("kling-v3", MediaInput("video", "https://example.com/r.mp4", "reference_video")),
        ("kling-v3-omni", MediaInput("audio", "https://example.com/a.mp3", "reference_audio")),
    ],
)
def test_unsupported_roles_are_refused(model: str, item: MediaInput) -> None:
    with pytest.raises(InvalidRequest) as info:
        fixed.build_submit(job(inputs=(item,)), model, channel())
    assert item.role in info.value.message and info.value.param == "content"


@pytest.mark.parametrize("key", ["no-colon-here", ":secret-only", "access-only:"])
def test_malformed_credential_is_the_operators_problem(key: str) -> None:
    with pytest.raises(UpstreamError) as info:
        fixed.build_submit(job(), "kling-v3", channel(key=key))
    assert info.value.code == "upstream_auth_failed" and key not in info.value.message


def test_poll_is_a_get_on_the_family_path() -> None:
    base = "https://api-singapore.klingai.com/v1/videos"
    t2v = fixed.build_poll("8672837417", job(), channel())
    assert (t2v.url, t2v.body) == (f"{base}/text2video/8672837417", b"")
    assert "Content-Type" not in t2v.headers
    assert claims_of(t2v)[1]["iss"] == ACCESS_KEY
    assert fixed.build_poll("1", job(inputs=(FIRST,)), channel()).url == f"{base}/image2video/1"
    assert fixed.build_poll("1", job(inputs=(LAST,)), channel()).url == f"{base}/image2video/1"
    assert fixed.build_poll("1", job(inputs=(FIRST,)), channel(), upstream_model="kling-v3-omni").url == f"{base}/omni-video/1"
    assert family_of(job(), "kling-v3") == "text2video"


# --------------------------------------------------------------------------- responses


def envelope(data: Any, code: int = 0, message: str = "SUCCEED") -> bytes:
    return orjson.dumps({"code": code, "message": message, "request_id": "r-1", "data": data})


def test_parse_submit() -> None:
    assert fixed.parse_submit(envelope({"task_id": "867283741759111202", "task_status": "submitted"})) == "867283741759111202"
    with pytest.raises(RateLimited):
        fixed.parse_submit(orjson.dumps({"code": 1303, "message": "parallel task over resource pack limit", "request_id": "r"}))
    with pytest.raises(UpstreamError) as info:
        fixed.parse_submit(envelope({"task_status": "submitted"}))
    assert info.value.code == "upstream_bad_response"
    with pytest.raises(UpstreamError):
        fixed.parse_submit(b"<html>")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"task_id": "1", "task_status": "submitted", "task_status_msg": ""}, TaskUpdate("queued", raw_status="submitted")),
        ({"task_id": "1", "task_status": "processing", "task_status_msg": ""}, TaskUpdate("running", raw_status="processing")),
        (
            {"task_id": "1", "task_status": "succeed", "task_status_msg": "",
             "task_result": {"videos": [{"id": "9", "url": "https://cdn.example/v.mp4", "duration": "5.1"}]},
             "final_unit_deduction": "1"},
            TaskUpdate("succeeded", video_url="https://cdn.example/v.mp4", duration=Decimal("5.1"), raw_status="succeed"),
        ),
        (
            {"task_id": "1", "task_status": "succeed",
             "task_result": {"videos": [{"id": "9", "url": "https://cdn.example/v.mp4"}]}},
            TaskUpdate("succeeded", video_url="https://cdn.example/v.mp4", duration=None, raw_status="succeed"),
        ),
        (
            {"task_id": "1", "task_status": "failed", "task_status_msg": "content risk control"},
            TaskUpdate("failed", error={"code": "upstream_task_failed", "message": "content risk control"}, raw_status="failed"),
        ),
    ],
)
def test_parse_poll_states(data: dict[str, Any], expected: TaskUpdate) -> None:
    assert fixed.parse_poll(envelope(data)) == expected


@pytest.mark.parametrize(
    "data",
    [
        {"task_id": "1", "task_status": "exploded"},
        {"task_id": "1", "task_status": "succeed", "task_result": {"videos": []}},
        None,
    ],
)
def test_parse_poll_rejects_nonsense(data: Any) -> None:
    with pytest.raises(UpstreamError) as info:
        fixed.parse_poll(envelope(data))
    assert info.value.code == "upstream_bad_response"


def kling_body(code: int, message: str) -> bytes:
    return orjson.dumps({"code": code, "message": message, "request_id": "r-1"})


@pytest.mark.parametrize(
    ("status", "code", "cls", "our_code", "our_status"),
    [
        (401, 1004, UpstreamError, "upstream_auth_failed", 502),
        (401, 1000, UpstreamError, "upstream_auth_failed", 502),
        (429, 1102, UpstreamError, "upstream_auth_failed", 502),  # resource pack used up: the operator's
        (403, 1103, UpstreamError, "upstream_auth_failed", 502),
        (429, 1302, RateLimited, "upstream_rate_limited", 429),
        (429, 1303, RateLimited, "upstream_rate_limited", 429),
        (400, 1201, InvalidRequest, "upstream_bad_request", 400),
        (400, 1301, InvalidRequest, "upstream_bad_request", 400),
        (404, 1203, UpstreamError, "upstream_model_not_found", 502),
        (503, 5001, ServiceUnavailable, "upstream_overloaded", 503),
        (500, 5000, UpstreamError, "upstream_error", 502),
    ],
)
def test_error_mapping(status: int, code: int, cls: type[GatewayError], our_code: str, our_status: int) -> None:
    err = fixed.error(status, kling_body(code, "the vendor says no"), channel(), "7")
    assert type(err) is cls and err.code == our_code and err.status == our_status
    if cls is InvalidRequest:
        assert "the vendor says no (Kling code" in err.message
    if cls is RateLimited:
        assert err.headers == {"Retry-After": "7"}


def test_error_without_envelope_and_redaction() -> None:
    err = fixed.error(502, b"Bad Gateway", channel(), None)
    assert err.code == "upstream_error" and "Bad Gateway" in err.message
    err = fixed.error(400, kling_body(1201, f"bad key {ACCESS_KEY}"), channel(), None)
    assert ACCESS_KEY not in err.message and "[redacted]" in err.message


# --------------------------------------------------------------------------- over real HTTP


CREDENTIALS = {ACCESS_KEY: SECRET_KEY}


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


live = KlingVideoAdapter()


def run_task(server: ServerThread, the_job: VideoJob, model: str, *, poll_model: str | None = None) -> tuple[str, list[TaskUpdate]]:
    ch = channel(server.url)
    status, body, _ = send(live.build_submit(the_job, model, ch))
    assert status == 200, body
    task_id = live.parse_submit(body)
    updates: list[TaskUpdate] = []
    for _ in range(10):
        status, body, _ = send(live.build_poll(task_id, the_job, ch, upstream_model=poll_model))
        assert status == 200, body
        updates.append(live.parse_poll(body))
        if updates[-1].state in TERMINAL_STATES:
            break
    return task_id, updates


def test_text2video_round_trip(server: ServerThread, state: FakeKlingState) -> None:
    task_id, updates = run_task(server, job(mode="pro"), "kling-v3")
    assert [u.state for u in updates] == ["running", "running", "succeeded"]
    assert updates[-1].duration == Decimal("5")
    assert updates[-1].video_url == state.tasks[task_id].video_url
    assert [(r.method, r.path) for r in state.requests] == [("POST", "/v1/videos/text2video")] + [
        ("GET", f"/v1/videos/text2video/{task_id}")] * 3
    assert state.tasks[task_id].owner == ACCESS_KEY and state.tasks[task_id].mode == "pro"
    assert state.requests[0].json["duration"] == "5"


def test_image2video_round_trip_with_reported_duration(server: ServerThread, state: FakeKlingState) -> None:
    first = MediaInput("image", f"data:image/png;base64,{PNG_B64}", "first_frame")
    the_job = job(prompt="Waves #fake:duration=4.2 #fake:queued=2", inputs=(first,), generate_audio=True, mode="pro")
    task_id, updates = run_task(server, the_job, "kling-v2-6")
    assert [u.state for u in updates] == ["queued", "running", "running", "succeeded"]
    assert updates[-1].duration == Decimal("4.2")
    assert state.tasks[task_id].family == "image2video"
    assert state.requests[0].json["image"] == PNG_B64 and state.requests[0].json["sound"] == "on"


def test_omni_round_trip(server: ServerThread, state: FakeKlingState) -> None:
    the_job = job(inputs=(FIRST,), duration=3)
    task_id, updates = run_task(server, the_job, "kling-v3-omni", poll_model="kling-v3-omni")
    assert updates[-1] == TaskUpdate("succeeded", video_url=state.tasks[task_id].video_url, duration=Decimal("3"),
                                     raw_status="succeed")
    assert state.tasks[task_id].family == "omni-video"


def test_failed_task(server: ServerThread, state: FakeKlingState) -> None:
    _, updates = run_task(server, job(prompt="Fox #fake:fail #fake:polls=0"), "kling-v3")
    assert updates == [TaskUpdate("failed", error={"code": "upstream_task_failed", "message": FAIL_MESSAGE}, raw_status="failed")]


def test_concurrency_limit_is_a_rate_limit(server: ServerThread, state: FakeKlingState) -> None:
    status, body, retry_after = send(live.build_submit(job(prompt="Fox #fake:rate_limit"), "kling-v3", channel(server.url)))
    err = live.error(status, body, channel(server.url), retry_after)
    assert status == 429 and isinstance(err, RateLimited) and "parallel task over resource pack limit" in err.message
    assert state.tasks == {}


def test_poll_error_then_recovery(server: ServerThread, state: FakeKlingState) -> None:
    ch = channel(server.url)
    the_job = job(prompt="Fox #fake:poll_status=503")
    status, body, _ = send(live.build_submit(the_job, "kling-v3", ch))
    task_id = live.parse_submit(body)
    status, body, retry_after = send(live.build_poll(task_id, the_job, ch))
    assert status == 503 and isinstance(live.error(status, body, ch, retry_after), ServiceUnavailable)
    status, body, _ = send(live.build_poll(task_id, the_job, ch))
    assert status == 200 and live.parse_poll(body).state == "running"


def test_upstream_rejects_the_request(server: ServerThread, state: FakeKlingState) -> None:
    ch = channel(server.url)
    status, body, _ = send(live.build_submit(job(duration=7), "kling-v2-5-turbo", ch))
    err = live.error(status, body, ch, None)
    assert status == 400 and isinstance(err, InvalidRequest) and 'duration for kling-v2-5-turbo must be "5" or "10"' in err.message


def test_expired_token_is_an_upstream_auth_failure(server: ServerThread, state: FakeKlingState) -> None:
    stale = KlingVideoAdapter(now=lambda: time.time() - 3600)  # exp = an hour ago + 30 min: expired
    ch = channel(server.url)
    status, body, _ = send(stale.build_submit(job(), "kling-v3", ch))
    assert status == 401 and orjson.loads(body)["code"] == 1004
    err = stale.error(status, body, ch, None)
    assert type(err) is UpstreamError and err.code == "upstream_auth_failed" and err.status == 502
    future = KlingVideoAdapter(now=lambda: time.time() + 600)  # nbf 10 minutes ahead: not yet valid
    status, body, _ = send(future.build_submit(job(), "kling-v3", ch))
    assert status == 401 and orjson.loads(body)["code"] == 1003
    assert future.error(status, body, ch, None).code == "upstream_auth_failed"


def test_wrong_secret_is_an_upstream_auth_failure(server: ServerThread, state: FakeKlingState) -> None:
    ch = channel(server.url, key=f"{ACCESS_KEY}:sk-wrong-0123456789abcdef0123456789abcdef")
    status, body, _ = send(live.build_submit(job(), "kling-v3", ch))
    assert status == 401 and live.error(status, body, ch, None).code == "upstream_auth_failed"
    assert state.tasks == {}
