"""Reading a request: its body, its key, and the checks of the fields every endpoint shares."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.ark.errors import ArkError, invalid, missing
from tokenhub.simulator.ark.models import VideoCaps
from tokenhub.simulator.ark.tasks import STATE_KEY, FakeArkState
from tokenhub.simulator.common.recording import Headers, RecordedRequest


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_bool(body: dict[str, Any], name: str) -> None:
    if name in body and not isinstance(body[name], bool):
        raise invalid(name, "expected a boolean")


def check_model(state: FakeArkState, body: dict[str, Any], kinds: tuple[str, ...], what: str) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise missing("model")
    if not isinstance(model, str):
        raise invalid("model", "expected a string")
    if not (model in state.models or model.startswith(("doubao-", "ep-"))):
        raise ArkError(
            404,
            "InvalidEndpointOrModel.NotFound",
            f"The model or endpoint {model} does not exist or you do not have access to it.",
            param="model",
        )
    if not model.startswith("ep-") and not any(kind in model for kind in kinds):
        raise invalid("model", f"the model {model} does not support {what}")
    return model


def media_url(item: dict[str, Any], key: str, index: int) -> None:
    obj = item.get(key)
    if not isinstance(obj, dict) or not isinstance(obj.get("url"), str) or not obj["url"]:
        raise invalid(f"content[{index}].{key}.url", "expected a non-empty URL or data URI")


def parse_content(content: Any, caps: VideoCaps) -> tuple[str, dict[str, int]]:
    """Validate the content array; answer the prompt text and the count of each role."""
    if content is None:
        raise missing("content")
    if not isinstance(content, list) or not content:
        raise invalid("content", "expected a non-empty array")
    texts: list[str] = []
    roles = {"first_frame": 0, "last_frame": 0, "reference_image": 0, "reference_video": 0, "reference_audio": 0}
    images: list[tuple[int, Any]] = []
    for i, item in enumerate(content):
        if not isinstance(item, dict):
            raise invalid(f"content[{i}]", "expected an object")
        type_ = item.get("type")
        if type_ == "text":
            if not isinstance(item.get("text"), str) or not item["text"].strip():
                raise invalid(f"content[{i}].text", "expected a non-empty string")
            texts.append(item["text"])
        elif type_ == "image_url":
            media_url(item, "image_url", i)
            images.append((i, item.get("role")))
        elif type_ in ("video_url", "audio_url"):
            media_url(item, type_, i)
            expected = "reference_video" if type_ == "video_url" else "reference_audio"
            role = item.get("role", expected)
            if role != expected:
                raise invalid(f"content[{i}].role", f"a {type_} item takes role {expected}")
            if not caps.media_refs:
                raise invalid(f"content[{i}].type", f"{type_} is not supported by this model")
            roles[expected] += 1
        else:
            raise invalid(f"content[{i}].type", "expected one of text, image_url, video_url, audio_url")
    if len(texts) > 1:
        raise invalid("content", "at most one text item is allowed")
    for i, role in images:
        if role is None:
            if len(images) > 1:
                raise invalid(f"content[{i}].role", "role is required when several images are given")
            role = "first_frame"
        if role not in ("first_frame", "last_frame", "reference_image"):
            raise invalid(f"content[{i}].role", "expected one of first_frame, last_frame, reference_image")
        roles[role] += 1
    if not texts and not images:
        raise invalid("content", "a text prompt or an image is required")
    frames = roles["first_frame"] + roles["last_frame"]
    references = roles["reference_image"] + roles["reference_video"] + roles["reference_audio"]
    if roles["first_frame"] > 1 or roles["last_frame"] > 1:
        raise invalid("content", "at most one first_frame and one last_frame image are allowed")
    if roles["last_frame"] and not roles["first_frame"]:
        raise invalid("content", "a last_frame image needs a first_frame image")
    if frames and references:
        raise invalid("content", "first/last frame images cannot be combined with reference media")
    if roles["reference_image"] > caps.max_reference_images:
        raise invalid("content", f"at most {caps.max_reference_images} reference_image items are allowed")
    if roles["reference_video"] > 3 or roles["reference_audio"] > 3:
        raise invalid("content", "at most 3 reference_video and 3 reference_audio items are allowed")
    if roles["reference_audio"] and not (roles["reference_image"] or roles["reference_video"]):
        raise invalid("content", "reference_audio needs at least one reference_image or reference_video")
    if frames + references > 12:
        raise invalid("content", "at most 12 media items are allowed")
    return (texts[0] if texts else ""), roles


async def read_json(request: web.Request, state: FakeArkState) -> Any:
    raw = await request.read()
    try:
        parsed = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        parsed = None
    state.requests.append(RecordedRequest(request.method, request.path_qs, Headers(request.headers.items()), parsed, raw))
    return parsed


def check_auth(request: web.Request, state: FakeArkState) -> None:
    if state.api_keys is None:
        return
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or key.strip() not in state.api_keys:
        raise ArkError(401, "AuthenticationError", "The API key or AK/SK in the request is missing or invalid.")


async def begin(request: web.Request) -> tuple[FakeArkState, Any]:
    """Record the request, check auth, answer the state and the parsed body (None without one)."""
    state = request.app[STATE_KEY]
    body = await read_json(request, state)
    check_auth(request, state)
    return state, body


def json_response(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ArkError(400, "InvalidParameter", "The request body is not a valid JSON object.")
    return body
