"""Ark media adapters (Seedance tasks, Seedream images): pure mapping, then round trips over real HTTP
against the fake Ark (``tokenhub.simulator.ark``)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import orjson
import pytest

from tests.support.servers import ServerThread
from tokenhub.errors import GatewayError, InvalidRequest, RateLimited, ServiceUnavailable, UpstreamError
from tokenhub.providers.base import UpstreamRequest
from tokenhub.providers.media.ark import ArkImageAdapter, ArkVideoAdapter, default_image_size
from tokenhub.providers.media.base import GeneratedImage, ImageJob, MediaInput, TaskUpdate, VideoJob
from tokenhub.simulator.ark import FakeArkState, create_app
from tokenhub.upstream import Channel

API_KEY = "ark-test-key"
BASE = "https://ark.cn-beijing.volces.com/api/v3"
CHANNEL = Channel(id=7, name="ark", provider="volcengine", protocol="ark", base_url=BASE, api_key="ark-secret-key",
                  priority=0, weight=1)
SEEDANCE_2 = "doubao-seedance-2-0-260128"
SEEDANCE_15 = "doubao-seedance-1-5-pro-251215"
SEEDANCE_10 = "doubao-seedance-1-0-pro-250528"
SEEDREAM_5 = "doubao-seedream-5-0-260128"
SEEDREAM_3 = "doubao-seedream-3-0-t2i-250415"
VIDEO = ArkVideoAdapter()
IMAGE = ArkImageAdapter()
FIRST = MediaInput("image", "https://example.com/first.png", "first_frame")
LAST = MediaInput("image", "https://example.com/last.png", "last_frame")


def job(prompt: str = "A kitten yawning", **kw: object) -> VideoJob:
    fields: dict[str, object] = {"duration": 5, "resolution": "720p", "aspect_ratio": "16:9", **kw}
    return VideoJob(prompt=prompt, **fields)  # type: ignore[arg-type]


def submitted(video_job: VideoJob, model: str = SEEDANCE_2) -> dict[str, object]:
    return orjson.loads(VIDEO.build_submit(video_job, model, CHANNEL).body)


def ark_error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "param": None, "type": "BadRequest"}})


# --------------------------------------------------------------------------- video: pure mapping


def test_text_to_video_request_is_exact() -> None:
    request = VIDEO.build_submit(job(generate_audio=True, seed=11), SEEDANCE_2, CHANNEL)
    assert request.url == f"{BASE}/contents/generations/tasks"
    assert request.headers == {"Authorization": "Bearer ark-secret-key", "Accept": "application/json",
                               "Content-Type": "application/json"}
    assert orjson.loads(request.body) == {
        "model": SEEDANCE_2,
        "content": [{"type": "text", "text": "A kitten yawning"}],
        "resolution": "720p", "ratio": "16:9", "duration": 5, "generate_audio": True, "seed": 11,
        "watermark": False,
    }
    assert b"--rs" not in request.body and b"--dur" not in request.body


def test_media_items_roles_and_order() -> None:
    inputs = (
        MediaInput("audio", "https://example.com/a.mp3", "reference_audio"),
        MediaInput("video", "https://example.com/v.mp4", "reference_video"),
        MediaInput("image", "data:image/png;base64,AAAA", "reference_image"),
    )
    body = submitted(job("Use Video 1's camera move", resolution="1080p", aspect_ratio="9:16", duration=8,
                         inputs=inputs, negative_prompt="blur", mode="pro"))
    assert body == {
        "model": SEEDANCE_2,
        "content": [
            {"type": "text", "text": "Use Video 1's camera move"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}, "role": "reference_image"},
            {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}, "role": "reference_video"},
            {"type": "audio_url", "audio_url": {"url": "https://example.com/a.mp3"}, "role": "reference_audio"},
        ],
        "resolution": "1080p", "ratio": "9:16", "duration": 8, "generate_audio": False, "watermark": False,
    }
    # the last frame given first still goes after the first frame
    frames = submitted(job(inputs=(LAST, FIRST)))["content"]
    assert [item["role"] for item in frames[1:]] == ["first_frame", "last_frame"]  # type: ignore[index]


def test_image_only_job_has_no_text_item_and_seedance_1_0_gets_no_audio_field() -> None:
    body = submitted(job("  ", inputs=(FIRST,)), SEEDANCE_10)
    assert body["content"] == [{"type": "image_url", "image_url": {"url": FIRST.url}, "role": "first_frame"}]
    assert "generate_audio" not in body and "seed" not in body
    assert submitted(job(), SEEDANCE_15)["generate_audio"] is False  # Ark's default there is true


def test_inconsistent_media_input_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        VIDEO.build_submit(job(inputs=(MediaInput("image", "https://x/y.png", "reference_video"),)), SEEDANCE_2,
                           CHANNEL)
    with pytest.raises(InvalidRequest):
        VIDEO.build_submit(job(inputs=(MediaInput("image", "https://x/y.png", "middle_frame"),)), SEEDANCE_2, CHANNEL)


def test_poll_request_is_a_bodiless_get() -> None:
    request = VIDEO.build_poll("cgt-20250629201507-n6k56", job(), CHANNEL)
    assert request == UpstreamRequest(url=f"{BASE}/contents/generations/tasks/cgt-20250629201507-n6k56",
                                      headers={"Authorization": "Bearer ark-secret-key",
                                               "Accept": "application/json"}, body=b"")
    assert VIDEO.build_poll("a/../b?c", job(), CHANNEL).url.endswith("/tasks/a%2F..%2Fb%3Fc")


def test_parse_submit() -> None:
    assert VIDEO.parse_submit(b'{"id": "cgt-20250629201507-n6k56"}') == "cgt-20250629201507-n6k56"
    for bad in (b"", b"[]", b'{"id": ""}', b'{"id": 5}', b"<html>"):
        with pytest.raises(UpstreamError) as info:
            VIDEO.parse_submit(bad)
        assert info.value.code == "upstream_bad_response"


def poll(task: dict[str, object]) -> TaskUpdate:
    return VIDEO.parse_poll(orjson.dumps({"id": "cgt-1", "model": SEEDANCE_2, "error": None, **task}))


def test_parse_poll_states() -> None:
    assert poll({"status": "queued"}) == TaskUpdate("queued", raw_status="queued")
    assert poll({"status": "running", "duration": 5}) == TaskUpdate("running", raw_status="running")
    done = poll({"status": "succeeded", "content": {"video_url": "https://tos/x.mp4"}, "duration": 7,
                 "usage": {"completion_tokens": 1, "total_tokens": 1}})
    assert done == TaskUpdate("succeeded", video_url="https://tos/x.mp4", duration=Decimal(7), raw_status="succeeded")
    frames = poll({"status": "succeeded", "content": {"video_url": "u"}, "frames": 121, "framespersecond": 24})
    assert frames.duration == Decimal(121) / Decimal(24)
    assert poll({"status": "succeeded", "content": {"video_url": "u"}, "duration": -1}).duration is None
    failed = poll({"status": "failed", "error": {"code": "OutputVideoSensitiveContentDetected", "message": "nope"}})
    assert failed == TaskUpdate("failed", error={"code": "OutputVideoSensitiveContentDetected", "message": "nope"},
                                raw_status="failed")
    assert poll({"status": "failed"}).error == {"code": "upstream_task_failed",
                                                "message": "The upstream provider reported the task as failed."}
    assert poll({"status": "cancelled"}).state == "cancelled"
    assert poll({"status": "cancelled"}).error["code"] == "upstream_task_cancelled"  # type: ignore[index]
    expired = poll({"status": "expired"})
    assert expired.state == "expired" and expired.error["code"] == "upstream_task_expired"  # type: ignore[index]
    no_video = poll({"status": "succeeded", "content": {}})
    assert no_video.state == "failed" and no_video.error["code"] == "upstream_missing_video"  # type: ignore[index]


def test_parse_poll_refuses_unknown_status_and_garbage() -> None:
    for bad in (orjson.dumps({"status": "in_progress"}), orjson.dumps({"id": "x"}), b"oops", b"[1]"):
        with pytest.raises(UpstreamError) as info:
            VIDEO.parse_poll(bad)
        assert info.value.code == "upstream_bad_response"


def test_error_mapping() -> None:
    def err(status: int, body: bytes, retry_after: str | None = None) -> GatewayError:
        return VIDEO.error(status, body, CHANNEL, retry_after)

    bad = err(400, ark_error_body("InvalidParameter", "The parameter `ratio` is not valid. Request id: 02x"))
    assert isinstance(bad, InvalidRequest) and bad.status == 400 and "`ratio` is not valid" in bad.message
    auth = err(401, ark_error_body("AuthenticationError", "key ark-secret-key is invalid"))
    assert auth.status == 502 and auth.code == "upstream_auth_failed" and "ark-secret-key" not in auth.message
    limited = err(429, ark_error_body("RateLimitExceeded.EndpointRPMExceeded", "slow down"), "3")
    assert isinstance(limited, RateLimited) and limited.headers == {"Retry-After": "3"} and "slow down" in limited.message
    gone = err(404, ark_error_body("ResourceNotFound", "The specified task `cgt-1` is not found."))
    assert gone.status == 502 and gone.code == "upstream_task_not_found" and "cgt-1" in gone.message
    assert err(404, ark_error_body("InvalidEndpointOrModel.NotFound", "no model")).code == "upstream_model_not_found"
    assert err(500, ark_error_body("InternalServiceError", "boom")).status == 502
    overloaded = err(503, b"<html>busy</html>")
    assert isinstance(overloaded, ServiceUnavailable) and "busy" in overloaded.message
    assert IMAGE.error(400, ark_error_body("OutputImageSensitiveContentDetected", "sensitive"), CHANNEL, None).status == 400


# --------------------------------------------------------------------------- images: pure mapping


def test_image_requests_one_per_image() -> None:
    requests = IMAGE.build_request(ImageJob(prompt="a red fox", n=3, size="2560x1440"), SEEDREAM_5, CHANNEL)
    assert len(requests) == 3 and requests[0] == requests[1] == requests[2]
    assert requests[0].url == f"{BASE}/images/generations"
    assert requests[0].headers["Authorization"] == "Bearer ark-secret-key"
    assert orjson.loads(requests[0].body) == {
        "model": SEEDREAM_5, "prompt": "a red fox", "size": "2560x1440", "response_format": "url",
        "sequential_image_generation": "disabled", "watermark": False,
    }


def test_image_defaults_references_and_extras() -> None:
    one = orjson.loads(IMAGE.build_request(
        ImageJob(prompt="p", response_format="b64_json", images=("https://x/a.png",),
                 extra={"seed": 42, "output_format": "png", "n": 9, "model": "other"}), SEEDREAM_5, CHANNEL)[0].body)
    assert one == {"model": SEEDREAM_5, "prompt": "p", "size": "2048x2048", "response_format": "b64_json",
                   "image": "https://x/a.png", "sequential_image_generation": "disabled", "watermark": False,
                   "seed": 42, "output_format": "png"}
    two = orjson.loads(IMAGE.build_request(ImageJob(prompt="p", images=("u1", "u2")), SEEDREAM_5, CHANNEL)[0].body)
    assert two["image"] == ["u1", "u2"]
    legacy = orjson.loads(IMAGE.build_request(ImageJob(prompt="p"), SEEDREAM_3, CHANNEL)[0].body)
    assert legacy["size"] == "1024x1024" == default_image_size(SEEDREAM_3)
    assert "sequential_image_generation" not in legacy


def test_parse_image_response() -> None:
    body = orjson.dumps({"model": SEEDREAM_5, "created": 1, "data": [
        {"url": "https://tos/a.jpeg", "size": "2048x2048"},
        {"error": {"code": "OutputImageSensitiveContentDetected", "message": "no"}},
        {"b64_json": "QUJD", "size": "2048x2048"},
    ], "usage": {"generated_images": 2}})
    assert IMAGE.parse_response(body) == [GeneratedImage(url="https://tos/a.jpeg", size="2048x2048"),
                                          GeneratedImage(b64_json="QUJD", size="2048x2048")]
    assert IMAGE.parse_response(b'{"data": []}') == []
    for bad in (b"nope", b'{"data": null}', b'{"error": {"message": "x"}}'):
        with pytest.raises(UpstreamError):
            IMAGE.parse_response(bad)


# --------------------------------------------------------------------------- round trips against the fake Ark


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


@pytest.fixture
def channel(server: ServerThread, state: FakeArkState) -> Channel:
    return Channel(id=1, name="fake-ark", provider="volcengine", protocol="ark", base_url=f"{server.url}/api/v3",
                   api_key=API_KEY, priority=0, weight=1)


def send(request: UpstreamRequest) -> tuple[int, str | None, bytes]:
    """What the relay does: POST the body, or GET when the body is empty."""
    method = "POST" if request.body else "GET"
    req = urllib.request.Request(request.url, data=request.body or None, headers=request.headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Retry-After"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After"), exc.read()


def submit(video_job: VideoJob, channel: Channel, model: str = SEEDANCE_2) -> str:
    status, _, body = send(VIDEO.build_submit(video_job, model, channel))
    assert status == 200, body
    return VIDEO.parse_submit(body)


def poll_until_done(task_id: str, video_job: VideoJob, channel: Channel, limit: int = 10) -> list[TaskUpdate]:
    updates: list[TaskUpdate] = []
    while not updates or updates[-1].state not in ("succeeded", "failed", "cancelled", "expired"):
        assert len(updates) < limit, updates
        status, _, body = send(VIDEO.build_poll(task_id, video_job, channel))
        assert status == 200, body
        updates.append(VIDEO.parse_poll(body))
    return updates


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def test_text_to_video_round_trip(channel: Channel, state: FakeArkState) -> None:
    video_job = job("A kitten yawning", seed=11, generate_audio=True)
    task_id = submit(video_job, channel)
    updates = poll_until_done(task_id, video_job, channel)
    assert [u.state for u in updates] == ["queued", "running", "running", "succeeded"]
    done = updates[-1]
    assert done.duration == Decimal(5) and done.error is None and done.raw_status == "succeeded"
    assert done.video_url is not None and fetch(done.video_url)

    task = state.tasks[task_id]
    assert (task.resolution, task.ratio, task.duration, task.seed, task.generate_audio) == ("720p", "16:9", 5, 11, True)
    create, first_poll = state.requests[0], state.requests[1]
    assert create.method == "POST" and create.headers["authorization"] == f"Bearer {API_KEY}"
    assert create.json["content"] == [{"type": "text", "text": "A kitten yawning"}]
    assert first_poll.method == "GET" and first_poll.raw == b""


def test_first_and_last_frame_round_trip(channel: Channel, state: FakeArkState) -> None:
    video_job = job("360-degree orbit", inputs=(FIRST, LAST), aspect_ratio="adaptive", resolution="480p")
    task_id = submit(video_job, channel, SEEDANCE_15)
    done = poll_until_done(task_id, video_job, channel)[-1]
    assert done.state == "succeeded" and done.video_url and done.duration == Decimal(5)
    sent = state.tasks[task_id].request
    assert [(item["type"], item.get("role")) for item in sent["content"]] == [
        ("text", None), ("image_url", "first_frame"), ("image_url", "last_frame")]
    assert sent["generate_audio"] is False and state.tasks[task_id].generate_audio is False


def test_multimodal_references_accepted(channel: Channel, state: FakeArkState) -> None:
    inputs = (MediaInput("image", "https://example.com/cup.jpg", "reference_image"),
              MediaInput("video", "https://example.com/ref.mp4", "reference_video"),
              MediaInput("audio", "https://example.com/bgm.mp3", "reference_audio"))
    video_job = job("Image 1 as Video 1 with Audio 1 #fake:queued=0 #fake:polls=0", inputs=inputs, duration=8)
    done = poll_until_done(submit(video_job, channel), video_job, channel)
    assert [u.state for u in done] == ["succeeded"] and done[-1].duration == Decimal(8)


@pytest.mark.parametrize(("directive", "state_", "code"), [
    ("#fake:fail", "failed", "OutputVideoSensitiveContentDetected"),
    ("#fake:fail=InternalServiceError", "failed", "InternalServiceError"),
    ("#fake:expire", "expired", "upstream_task_expired"),
    ("#fake:cancel_upstream", "cancelled", "upstream_task_cancelled"),
])
def test_terminal_failures_round_trip(channel: Channel, directive: str, state_: str, code: str) -> None:
    video_job = job(f"doomed {directive} #fake:polls=1")
    final = poll_until_done(submit(video_job, channel), video_job, channel)[-1]
    assert final.state == state_ and final.video_url is None and final.duration is None
    assert final.error is not None and final.error["code"] == code and final.error["message"]


def test_reported_duration_round_trip(channel: Channel) -> None:
    video_job = job("#fake:duration=7 #fake:queued=0 #fake:polls=0", duration=5)
    (done,) = poll_until_done(submit(video_job, channel), video_job, channel)
    assert done.state == "succeeded" and done.duration == Decimal(7)


def test_video_error_statuses_round_trip(channel: Channel, state: FakeArkState) -> None:
    def submit_error(video_job: VideoJob, ch: Channel = channel, model: str = SEEDANCE_2) -> GatewayError:
        status, retry_after, body = send(VIDEO.build_submit(video_job, model, ch))
        assert status != 200
        return VIDEO.error(status, body, ch, retry_after)

    limited = submit_error(job("#fake:status=429 #fake:retry_after=3"))
    assert limited.status == 429 and limited.headers == {"Retry-After": "3"}
    assert submit_error(job("#fake:status=500")).status == 502
    bad = submit_error(job(resolution="4k"))
    assert bad.status == 400 and "resolution" in bad.message and "Request id" in bad.message
    assert submit_error(job(), model="doubao-nothing-1").status == 400  # not a seedance model
    assert submit_error(job(), model="nobody-model").code == "upstream_model_not_found"
    wrong_key = Channel(**{**channel.__dict__, "api_key": "wrong-key-123"})
    auth = submit_error(job(), wrong_key)
    assert auth.status == 502 and auth.code == "upstream_auth_failed"
    assert state.tasks == {}

    status, retry_after, body = send(VIDEO.build_poll("cgt-20990101000000-zzzzz", job(), channel))
    gone = VIDEO.error(status, body, channel, retry_after)
    assert status == 404 and gone.code == "upstream_task_not_found"

    flaky = job("#fake:poll_status=503")
    task_id = submit(flaky, channel)
    status, retry_after, body = send(VIDEO.build_poll(task_id, flaky, channel))
    assert status == 503 and isinstance(VIDEO.error(status, body, channel, retry_after), ServiceUnavailable)
    assert poll_until_done(task_id, flaky, channel)[-1].state == "succeeded"
    assert channel.base_url not in limited.message + bad.message + gone.message


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
def test_images_n2_round_trip(channel: Channel, state: FakeArkState, response_format: str) -> None:
    image_job = ImageJob(prompt="a red fox in snow", n=2, response_format=response_format)
    requests = IMAGE.build_request(image_job, SEEDREAM_5, channel)
    images: list[GeneratedImage] = []
    for request in requests:
        status, _, body = send(request)
        assert status == 200, body
        images.extend(IMAGE.parse_response(body))
    assert len(images) == 2 and all(image.size == "2048x2048" for image in images)
    if response_format == "url":
        assert all(image.url and image.b64_json is None and fetch(image.url) for image in images)
        assert images[0].url != images[1].url
    else:
        assert all(image.b64_json and image.url is None for image in images)
    sent = [r.json for r in state.requests]
    assert len(sent) == 2 and sent[0] == sent[1]
    assert sent[0]["sequential_image_generation"] == "disabled" and sent[0]["watermark"] is False


def test_image_errors_round_trip(channel: Channel) -> None:
    def image_error(image_job: ImageJob, model: str = SEEDREAM_5) -> GatewayError:
        (request,) = IMAGE.build_request(image_job, model, channel)
        status, retry_after, body = send(request)
        assert status != 200
        return IMAGE.error(status, body, channel, retry_after)

    refused = image_error(ImageJob(prompt="#fake:fail"))
    assert isinstance(refused, InvalidRequest) and "sensitive" in refused.message
    assert image_error(ImageJob(prompt="fox", size="100x100")).status == 400
    assert image_error(ImageJob(prompt="#fake:status=429")).status == 429
    assert image_error(ImageJob(prompt="#fake:status=503")).status == 503
    assert image_error(ImageJob(prompt="fox"), "nobody-model").code == "upstream_model_not_found"
