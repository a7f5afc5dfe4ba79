"""Synchronous Seedream image generation (``/images/generations``)."""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any

from aiohttp import web

from tokenhub.simulator.ark.errors import ArkError, invalid, missing, status_error
from tokenhub.simulator.ark.media import FAKE_JPEG, FAKE_PNG
from tokenhub.simulator.ark.request import begin, check_bool, check_model, is_int, json_response, require_object
from tokenhub.simulator.ark.scenario import Scenario
from tokenhub.simulator.common.mounting import public_base

SIZE_PRESETS = {"1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}
SIZE_RE = re.compile(r"^(\d+)x(\d+)$")


def image_size(model: str, size: Any) -> tuple[int, int]:
    if size is None:
        size = "2048x2048"
    if not isinstance(size, str):
        raise invalid("size", "expected a string")
    legacy = "seedream-3" in model or "seededit-3" in model
    if size.upper() in SIZE_PRESETS and not legacy:
        side = SIZE_PRESETS[size.upper()]
        return side, side
    match = SIZE_RE.match(size)
    if not match:
        raise invalid("size", "expected 1K, 2K, 3K, 4K or WIDTHxHEIGHT")
    width, height = int(match[1]), int(match[2])
    if legacy:
        if not (512 <= width <= 2048 and 512 <= height <= 2048):
            raise invalid("size", "width and height must be in [512, 2048]")
        return width, height
    min_pixels = 2560 * 1440 if ("seedream-4-5" in model or "seedream-5" in model) else 1280 * 720
    if not (min_pixels <= width * height <= 4096 * 4096) or not (1 / 16 <= width / max(height, 1) <= 16):
        raise invalid("size", f"total pixels must be in [{min_pixels}, 16777216] and the aspect ratio in [1/16, 16]")
    return width, height


async def generate_images(request: web.Request) -> web.Response:
    state, body = await begin(request)
    body = require_object(body)
    model = check_model(state, body, ("seedream", "seededit"), "image generation")
    prompt = body.get("prompt")
    if prompt is None:
        raise missing("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt", "expected a non-empty string")
    scenario = Scenario.parse(prompt, "prompt")
    refs = body.get("image")
    refs = [] if refs is None else [refs] if isinstance(refs, str) else refs
    if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs) or len(refs) > 14:
        raise invalid("image", "expected a URL / data URI or an array of at most 14")
    width, height = image_size(model, body.get("size"))
    response_format = body.get("response_format", "url")
    if response_format not in ("url", "b64_json"):
        raise invalid("response_format", "expected url or b64_json")
    seed = body.get("seed", -1)
    if not is_int(seed) or not -1 <= seed <= 2_147_483_647:
        raise invalid("seed", "expected an integer in [-1, 2147483647]")
    check_bool(body, "watermark")
    if body.get("stream"):
        raise invalid("stream", "streaming is not simulated by this fake")
    output_format = body.get("output_format", "jpeg")
    if output_format not in ("jpeg", "png"):
        raise invalid("output_format", "expected jpeg or png")
    mode = body.get("sequential_image_generation", "disabled")
    if mode not in ("auto", "disabled"):
        raise invalid("sequential_image_generation", "expected auto or disabled")
    options = body.get("sequential_image_generation_options") or {}
    if not isinstance(options, dict):
        raise invalid("sequential_image_generation_options", "expected an object")
    max_images = options.get("max_images", 15)
    if not is_int(max_images) or not 1 <= max_images <= 15:
        raise invalid("sequential_image_generation_options.max_images", "expected an integer in [1, 15]")
    if scenario.status is not None:
        raise status_error(scenario.status, scenario.error_code, scenario.retry_after)
    if scenario.fail is not None:
        raise ArkError(
            400,
            scenario.fail or "OutputImageSensitiveContentDetected",
            "The request failed because the output image may contain sensitive information (simulated).",
        )

    count = 1
    if mode == "auto":
        wanted = scenario.images if scenario.images is not None else max_images
        count = max(1, min(wanted, max_images, 15 - len(refs)))
    failed = min(scenario.failed_images, count)
    batch = secrets.token_hex(8)
    data: list[dict[str, Any]] = []
    tokens = 0
    for i in range(count):
        if i >= count - failed:
            data.append(
                {
                    "error": {
                        "code": "OutputImageSensitiveContentDetected",
                        "message": "The output image may contain sensitive information (simulated).",
                    }
                }
            )
            continue
        item: dict[str, Any] = {}
        if response_format == "url":
            item["url"] = f"{public_base(request)}/images/{batch}_{i}.{output_format}"
        else:
            item["b64_json"] = base64.b64encode(FAKE_PNG if output_format == "png" else FAKE_JPEG).decode()
        item["size"] = f"{width}x{height}"
        data.append(item)
        tokens += round(width * height / 256)
    usage = {"generated_images": count - failed, "output_tokens": tokens, "total_tokens": tokens}
    return json_response({"model": model, "created": int(time.time()), "data": data, "usage": usage})
