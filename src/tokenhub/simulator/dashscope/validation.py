"""The limits the real video-synthesis API enforces on a create request (each a 400 ``InvalidParameter``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tokenhub.simulator.dashscope.errors import DashScopeError, invalid
from tokenhub.simulator.dashscope.models import ModelSpec
from tokenhub.simulator.dashscope.tasks import FakeDashScopeState

SEED_MAX = 2_147_483_647


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class CreateRequest:
    model: str
    spec: ModelSpec
    prompt: str | None
    parameters: dict[str, Any]


def validate_identity(body: Any, state: FakeDashScopeState, request: web.Request) -> CreateRequest:
    """Body shape, model and the async header (checked before the input itself)."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object.")
    model = body.get("model")
    if model is None or model == "":
        raise DashScopeError(400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.')
    if not isinstance(model, str) or model not in state.models:
        raise DashScopeError(404, "InvalidParameter", "Model not exist.")
    if request.headers.get("X-DashScope-Async", "").strip().lower() != "enable":
        raise DashScopeError(403, "AccessDenied", "current user api does not support synchronous calls")
    input_ = body.get("input")
    if not isinstance(input_, dict) or not input_:
        raise DashScopeError(400, "BadRequest.EmptyInput", "Required input parameter missing from request.")
    prompt = input_.get("prompt")
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid("parameters must be an object.")
    return CreateRequest(model, state.models[model], prompt if isinstance(prompt, str) else None, parameters or {})


def validate_input(req: CreateRequest, body: dict[str, Any]) -> tuple[str | None, str | None, int, bool]:
    """The model-specific checks; returns (size, resolution, duration, prompt_extend)."""
    spec, params, input_ = req.spec, req.parameters, body["input"]
    if spec.kind == "t2v" and not (req.prompt and req.prompt.strip()):
        raise invalid("Field required: input.prompt")
    if spec.kind == "i2v":
        img_url = input_.get("img_url")
        if not isinstance(img_url, str) or not img_url.strip():
            raise invalid("Field required: input.img_url")
    size = resolution = None
    if spec.kind == "t2v":
        size = params.get("size", spec.default_size)
        if size not in spec.sizes:
            raise invalid(f"The size does not match the allowed size {','.join(spec.sizes)}.")
    else:
        resolution = params.get("resolution", spec.default_resolution)
        if resolution not in spec.resolutions:
            raise invalid(f"The resolution does not match the allowed resolution {','.join(spec.resolutions)}.")
    duration = params.get("duration", spec.default_duration)
    if not _is_int(duration) or duration not in spec.durations:
        raise invalid(f"The duration does not match the allowed duration {','.join(map(str, spec.durations))}.")
    for name in ("prompt_extend", "watermark"):
        if name in params and not isinstance(params[name], bool):
            raise invalid(f"parameters.{name} must be a boolean.")
    seed = params.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= SEED_MAX):
        raise invalid(f"parameters.seed must be an integer in [0, {SEED_MAX}].")
    return size, resolution, duration, params.get("prompt_extend", True)
