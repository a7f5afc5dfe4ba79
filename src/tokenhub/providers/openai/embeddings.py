"""OpenAI's ``POST /embeddings``, for every OpenAI-protocol vendor that serves embeddings (OpenAI, and
Qwen's text-embedding models through Model Studio's OpenAI-compatible mode).

Vectors are asked for as floats (the client's ``encoding_format`` is the gateway's to apply); the
upstream's ``usage.prompt_tokens`` is what the request is billed for.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenhub.errors import UpstreamError
from tokenhub.providers.base import AdapterDefaults, UpstreamRequest
from tokenhub.providers.embeddings import Embedded, Input
from tokenhub.tokens import MalformedUsage, usage_count
from tokenhub.upstream import Channel


class OpenAIEmbeddings(AdapterDefaults):
    def build_request(self, inputs: list[Input], upstream_model: str, channel: Channel, dimensions: int | None) -> UpstreamRequest:
        body: dict[str, Any] = {"model": upstream_model, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        return UpstreamRequest(
            url=f"{channel.base_url}/embeddings",
            headers={"Authorization": f"Bearer {channel.api_key}", "Content-Type": "application/json"},
            body=orjson.dumps(body),
        )

    def parse_response(self, body: bytes, count: int) -> Embedded:
        try:
            parsed = orjson.loads(body)
            data = sorted(parsed["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UpstreamError("the upstream provider sent embeddings the gateway cannot read", code="upstream_bad_response") from None
        if len(vectors) != count:
            raise UpstreamError(f"the upstream provider sent {len(vectors)} embeddings for {count} inputs", code="upstream_bad_response")
        try:
            usage = parsed.get("usage")
            tokens = usage_count(usage.get("prompt_tokens")) if isinstance(usage, dict) and "prompt_tokens" in usage else None
        except MalformedUsage:
            tokens = None
        return Embedded(vectors, tokens)
