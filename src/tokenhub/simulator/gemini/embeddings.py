"""The fake Gemini's ``:embedContent`` and ``:batchEmbedContents``.

Google's shapes: ``{"content": {"parts": [{"text"}]}, "taskType", "outputDimensionality"}`` in,
``{"embedding": {"values": [...]}}`` out; a batch is ``{"requests": [...]}`` (each naming the same
``models/{model}`` as the URL, at most 100) answered ``{"embeddings": [...]}``. No token usage is
reported, as Google reports none. A text's vector comes from its SHA-256 (the same text, the same
vector); its length is ``outputDimensionality`` (128 to 3072), else 3072.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from aiohttp import web

from tokenhub.simulator.gemini.errors import invalid

MAX_BATCH = 100
DEFAULT_DIMENSIONS = 3072


def _values(text: str, dimensions: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] * 29 + i * 13) % 251) / 125.0 - 1.0 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def _embedding(request: Any, where: str) -> dict[str, Any]:
    if not isinstance(request, dict) or not isinstance(request.get("content"), dict):
        raise invalid(f"Invalid value at '{where}content': a Content object is required.")
    parts = request["content"].get("parts")
    texts = [p.get("text") for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []
    if not texts or not all(isinstance(t, str) for t in texts) or not "".join(texts).strip():
        raise invalid("* EmbedContentRequest.content.parts: contents must not be empty\n")
    dimensions = request.get("outputDimensionality", DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= DEFAULT_DIMENSIONS:
        raise invalid(f"Invalid value at '{where}output_dimensionality' ({dimensions!r}).")
    return {"values": _values("".join(texts), dimensions)}


def embed(method: str, model: str, body: Any) -> web.Response:
    """The answer to ``models/{model}:{method}`` for the two embedding methods."""
    if method == "embedContent":
        return web.json_response({"embedding": _embedding(body, "")})
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise invalid("* BatchEmbedContentsRequest.requests: requests must not be empty\n")
    if len(requests) > MAX_BATCH:
        raise invalid(f"* BatchEmbedContentsRequest.requests: at most {MAX_BATCH} requests can be in one batch\n")
    out = []
    for i, request in enumerate(requests):
        if isinstance(request, dict) and request.get("model") != f"models/{model}":
            raise invalid(f"Model name in request {i} ({request.get('model')}) does not match the batch's (models/{model}).")
        out.append(_embedding(request, f"requests[{i}]."))
    return web.json_response({"embeddings": out})
