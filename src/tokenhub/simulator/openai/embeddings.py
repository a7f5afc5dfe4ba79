"""The fake's ``POST /v1/embeddings``: OpenAI's request, limits and answer, with deterministic vectors.

A text's vector is drawn from its SHA-256 (the same text always gets the same unit vector); its
length is ``dimensions`` where the model takes it (text-embedding-3-*, Qwen's text-embedding-v3/v4),
else the model's default. ``usage.prompt_tokens`` counts one token per word (token arrays: their
length). Qwen's models take at most 10 inputs per request, as Model Studio's compatible mode does.
``#fake:status=N`` in the first input answers that error.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

import orjson
from aiohttp import web

from tokenhub.simulator.openai.errors import FakeAPIError, status_error
from tokenhub.simulator.openai.request import check_auth, read_body
from tokenhub.simulator.openai.scenario import Scenario
from tokenhub.simulator.openai.state import STATE_KEY

DEFAULT_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536,
                      "text-embedding-v4": 1024, "text-embedding-v3": 1024}  # fmt: skip
SHORTENABLE = ("text-embedding-3", "text-embedding-v3", "text-embedding-v4")
PARAMETERS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
INPUT_INVALID = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."


def vector(text: str, dimensions: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] * 31 + i * 17) % 255) / 127.0 - 1.0 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _inputs(body: dict[str, Any]) -> list[Any]:
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(t, int) for t in value)):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > 2048:
        raise FakeAPIError(400, INPUT_INVALID)
    for item in value:
        if item == "" or item == [] or not isinstance(item, (str, list)):
            raise FakeAPIError(400, INPUT_INVALID)
    return value


def _validate(body: Any) -> tuple[str, list[Any], int]:
    if not isinstance(body, dict):
        raise FakeAPIError(400, "Invalid type for request body: expected an object.")
    unknown = sorted(k for k in body if k not in PARAMETERS)
    if unknown:
        raise FakeAPIError(400, f"Unrecognized request argument supplied: {', '.join(unknown)}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise FakeAPIError(400, "you must provide a model parameter")
    inputs = _inputs(body)
    if model.startswith("text-embedding-v") and len(inputs) > 10:
        raise FakeAPIError(400, "batch size is invalid, it should not be larger than 10.: input.contents")
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if not model.startswith(SHORTENABLE):
            raise FakeAPIError(400, "This model does not support specifying dimensions.", param="dimensions")
        if not isinstance(dimensions, int) or dimensions < 1:
            raise FakeAPIError(400, f"Invalid value for 'dimensions': {dimensions!r}.", param="dimensions")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise FakeAPIError(400, "Invalid value for 'encoding_format'.", param="encoding_format")
    return model, inputs, dimensions or DEFAULT_DIMENSIONS.get(model, 1536)


async def embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await read_body(request, state)
        check_auth(request, state)
        model, inputs, dimensions = _validate(body)
    except FakeAPIError as exc:
        return exc.response()
    first = inputs[0] if isinstance(inputs[0], str) else ""
    scenario = Scenario.parse(first)
    if scenario.status is not None:
        return status_error(scenario.status, model, scenario.retry_after).response()
    base64_out = body.get("encoding_format") == "base64"
    data, tokens = [], 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += len(item.split()) if isinstance(item, str) else len(item)
        values = vector(text, dimensions)
        encoded: Any = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode() if base64_out else values
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    answer = {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return web.Response(body=orjson.dumps(answer), content_type="application/json")
