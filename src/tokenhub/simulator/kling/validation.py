"""The limits the real Kling API enforces on a create request (each a 400, code 1201)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from tokenhub.simulator.kling.errors import KlingError, invalid
from tokenhub.simulator.kling.models import (
    ASPECT_RATIOS,
    DEFAULT_MODEL_NAME,
    DURATIONS,
    FAMILY_MODELS,
    MAX_PROMPT_CHARS,
    MODES,
    OMNI_IMAGE_TYPES,
    SILENT_STD_MODELS,
    SOUND_MODELS,
    STANDARD_DURATIONS,
)
from tokenhub.simulator.kling.tasks import FakeKlingState

_BASE64_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def _optional_str(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if value not in allowed:
        raise invalid(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")
    return str(value)


def _check_prompt(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string.")
    if len(value) > MAX_PROMPT_CHARS:
        raise invalid(f"{name} must not exceed {MAX_PROMPT_CHARS} characters.")
    return value


def _check_image(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{name} must be an image URL or a Base64 string.")
    if value.startswith(("http://", "https://")):
        return
    if value.startswith("data:"):
        raise invalid(f"{name}: send the raw Base64 string without a 'data:...;base64,' prefix.")
    try:
        if not _BASE64_RE.match(value):
            raise ValueError
        base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise invalid(f"{name} must be an image URL or a Base64 string.") from None


def _check_omni_images(body: dict[str, Any]) -> None:
    images = body.get("image_list")
    if images is None:
        return
    if not isinstance(images, list):
        raise invalid("image_list must be an array.")
    limit = 4 if body.get("video_list") else 7
    if len(images) > limit:
        raise invalid(f"image_list allows at most {limit} images here.")
    for i, item in enumerate(images):
        if not isinstance(item, dict) or "image_url" not in item:
            raise invalid(f"image_list[{i}] must be an object with image_url.")
        _check_image(f"image_list[{i}].image_url", item["image_url"])
        if item.get("type") is not None and item["type"] not in OMNI_IMAGE_TYPES:
            raise invalid(f"image_list[{i}].type must be one of {', '.join(OMNI_IMAGE_TYPES)}.")
    if body.get("video_list") is not None and not isinstance(body["video_list"], list):
        raise invalid("video_list must be an array.")


def model_allowed(model: str, family: str, state: FakeKlingState) -> bool:
    if model not in state.models:
        return False
    known = any(model in models for models in FAMILY_MODELS.values())
    return model in FAMILY_MODELS[family] if known else family != "omni-video"


@dataclass
class CreateRequest:
    model_name: str
    mode: str
    duration: str
    external_task_id: str | None
    callback_url: str | None
    directive_text: str


def validate_create(body: Any, family: str, state: FakeKlingState) -> CreateRequest:
    if not isinstance(body, dict):
        raise KlingError(400, 1200, "Invalid request parameters: the body must be a JSON object.")
    if family == "omni-video":
        model = body.get("model_name")
        if not isinstance(model, str):
            raise invalid("model_name is required.")
    else:
        model = body.get("model_name") or DEFAULT_MODEL_NAME
    allowed_models = [m for m in state.models if model_allowed(m, family, state)]
    if not isinstance(model, str) or not model_allowed(model, family, state):
        raise invalid(f"model_name must be one of {', '.join(allowed_models)} on /v1/videos/{family}; got {model!r}.")
    prompt = _check_prompt(body, "prompt")
    _check_prompt(body, "negative_prompt")
    multi_shot = body.get("multi_shot") is True
    if family != "image2video" and not multi_shot and not prompt.strip():
        raise invalid("prompt is required.")
    shot_prompts = ""
    if multi_shot and isinstance(body.get("multi_prompt"), list):
        shot_prompts = " ".join(str(s.get("prompt", "")) for s in body["multi_prompt"] if isinstance(s, dict))
    mode = _optional_str(body, "mode", MODES, "std")
    _optional_str(body, "aspect_ratio", ASPECT_RATIOS, "16:9")
    duration = body.get("duration", "5")
    if not isinstance(duration, str):
        raise invalid(f'duration must be a string, e.g. "5"; got {duration!r}.')
    durations = DURATIONS.get(model, STANDARD_DURATIONS)
    if duration not in durations:
        allowed = f'"{durations[0]}"…"{durations[-1]}"' if len(durations) > 2 else " or ".join(f'"{d}"' for d in durations)
        raise invalid(f"duration for {model} must be {allowed}; got {duration!r}.")
    cfg = body.get("cfg_scale")
    if cfg is not None and (isinstance(cfg, bool) or not isinstance(cfg, int | float) or not 0 <= cfg <= 1):
        raise invalid(f"cfg_scale must be a number in [0, 1]; got {cfg!r}.")
    sound = _optional_str(body, "sound", ("on", "off"), "off")
    if sound == "on" and model not in SOUND_MODELS:
        raise invalid(f"sound=on is not supported by {model} (only {', '.join(sorted(SOUND_MODELS))}).")
    if sound == "on" and model in SILENT_STD_MODELS and mode == "std":
        raise invalid(f"sound=on needs mode=pro on {model}.")
    if family == "image2video":
        image, tail = body.get("image"), body.get("image_tail")
        if not image and not tail:
            raise invalid("image or image_tail is required (at least one of them).")
        if image:
            _check_image("image", image)
        if tail:
            _check_image("image_tail", tail)
            clash = [k for k in ("camera_control", "static_mask", "dynamic_masks") if body.get(k)]
            if clash:
                raise invalid(f"image_tail cannot be combined with {', '.join(clash)}.")
    if family == "omni-video":
        _check_omni_images(body)
    camera = body.get("camera_control")
    if camera is not None and not isinstance(camera, dict):
        raise invalid("camera_control must be an object.")
    callback = body.get("callback_url")
    if callback is not None and not isinstance(callback, str):
        raise invalid("callback_url must be a string.")
    external = body.get("external_task_id")
    if external is not None and not isinstance(external, str):
        raise invalid("external_task_id must be a string.")
    return CreateRequest(model, mode, duration, external or None, callback or None, f"{prompt} {shot_prompts}")
