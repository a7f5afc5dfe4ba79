"""POST /videos/generations: the body, validated against what the chosen model supports.

Every refusal is a 400 naming the field and the allowed values. The model's limits come from its
catalog entry (``video``: durations [min, max], resolutions, aspect_ratios, modes, audio, roles).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tokenhub.catalog.model import Model
from tokenhub.errors import InvalidRequest
from tokenhub.providers.media.base import MediaInput, VideoJob

MAX_PROMPT = 5_000
KIND_OF_ROLE = {
    "first_frame": "image",
    "last_frame": "image",
    "reference_image": "image",
    "reference_video": "video",
    "reference_audio": "audio",
}
TYPE_OF_KIND = {"image": "image_url", "video": "video_url", "audio": "audio_url"}
MAX_INPUT_URL = 20 * 1024 * 1024  # characters; data URLs included


def _allowed(values: Any) -> str:
    return ", ".join(str(v) for v in values)


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{where}' must be a URL", param=where)
    if len(value) > MAX_INPUT_URL:
        raise InvalidRequest(f"'{where}' is too long", param=where)
    if value.startswith("data:"):
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:  # "http://[::1": the parser raises on what it cannot split
        raise InvalidRequest(f"'{where}' is not a valid URL", param=where) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"'{where}' must be an http(s) or data: URL", param=where)
    return value


def parse_callback_url(value: Any) -> str | None:
    if value is None:
        return None
    url = _url(value, "callback_url")
    if url.startswith("data:"):
        raise InvalidRequest("'callback_url' must be an http(s) URL", param="callback_url")
    return url


def parse_video_job(payload: dict[str, Any], model: Model) -> VideoJob:
    spec = model.video or {}
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("'prompt' is required: a description of the video", param="prompt")
    if len(prompt) > MAX_PROMPT:
        raise InvalidRequest(f"'prompt' must have at most {MAX_PROMPT} characters", param="prompt")

    low, high = (spec.get("durations") or [5, 5])[:2]
    duration = payload.get("duration", low if low == high else 5 if low <= 5 <= high else low)
    if isinstance(duration, bool) or not isinstance(duration, int) or not low <= duration <= high:
        raise InvalidRequest(f"'duration' must be a whole number of seconds from {low} to {high} for {model.id}", param="duration")

    resolutions = [str(r) for r in spec.get("resolutions") or ["720p"]]
    resolution = payload.get("resolution", "720p" if "720p" in resolutions else resolutions[0])
    if resolution not in resolutions:
        raise InvalidRequest(f"'resolution' must be one of {_allowed(resolutions)} for {model.id}", param="resolution")

    ratios = [str(r) for r in spec.get("aspect_ratios") or ["16:9"]]
    aspect_ratio = payload.get("aspect_ratio", "16:9" if "16:9" in ratios else ratios[0])
    if aspect_ratio not in ratios:
        raise InvalidRequest(f"'aspect_ratio' must be one of {_allowed(ratios)} for {model.id}", param="aspect_ratio")

    modes = [str(m) for m in spec.get("modes") or []]
    mode = payload.get("mode")
    if mode is not None and mode not in modes:
        allowed = _allowed(modes) if modes else "none (the model has no modes)"
        raise InvalidRequest(f"'mode' must be one of {allowed} for {model.id}", param="mode")
    if mode is None and modes:
        mode = modes[0]

    audio = payload.get("generate_audio", False)
    if not isinstance(audio, bool):
        raise InvalidRequest("'generate_audio' must be true or false", param="generate_audio")
    if audio and not spec.get("audio"):
        raise InvalidRequest(f"{model.id} cannot generate audio", param="generate_audio")

    inputs = _inputs(payload.get("content"), model, [str(r) for r in spec.get("roles") or []])
    negative = payload.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise InvalidRequest("'negative_prompt' must be a string", param="negative_prompt")
    seed = payload.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -1 <= seed < 2**32):
        raise InvalidRequest("'seed' must be a whole number from -1 to 4294967295", param="seed")
    return VideoJob(prompt.strip(), duration, resolution, aspect_ratio, mode, audio, inputs, negative, seed)


def _inputs(content: Any, model: Model, roles: list[str]) -> tuple[MediaInput, ...]:
    if content is None:
        return ()
    if not isinstance(content, list):
        raise InvalidRequest("'content' must be a list of media items", param="content")
    inputs: list[MediaInput] = []
    for i, item in enumerate(content):
        where = f"content[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"'{where}' must be an object", param=where)
        role = item.get("role")
        if role not in KIND_OF_ROLE:
            raise InvalidRequest(f"'{where}.role' must be one of {_allowed(KIND_OF_ROLE)}", param=f"{where}.role")
        if role not in roles:
            allowed = _allowed(roles) if roles else "none (text only)"
            raise InvalidRequest(f"{model.id} does not take '{role}' inputs; it takes: {allowed}", param=f"{where}.role")
        kind = KIND_OF_ROLE[role]
        type_ = TYPE_OF_KIND[kind]
        if item.get("type") != type_:
            raise InvalidRequest(f"'{where}.type' must be '{type_}' for role {role}", param=f"{where}.type")
        holder = item.get(type_)
        url = holder.get("url") if isinstance(holder, dict) else None
        inputs.append(MediaInput(kind, _url(url, f"{where}.{type_}.url"), role))
    for single in ("first_frame", "last_frame"):
        if sum(1 for x in inputs if x.role == single) > 1:
            raise InvalidRequest(f"at most one '{single}' input", param="content")
    if any(x.role == "last_frame" for x in inputs) and not any(x.role == "first_frame" for x in inputs):
        raise InvalidRequest("a 'last_frame' needs a 'first_frame'", param="content")
    return tuple(inputs)


def price_per_second(model: Model, job: VideoJob) -> int:
    """Nanos per second for this job's mode and audio (the catalog's per_second table)."""
    table = model.pricing.per_second
    base = job.mode or "default"
    for key in ((f"{base}_audio",) if job.generate_audio else ()) + (base, "default"):
        if key in table:
            return table[key]
    if table:
        return max(table.values())
    raise InvalidRequest(f"{model.id} has no per-second price; the operator must set one", param="model")
