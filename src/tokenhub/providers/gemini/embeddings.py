"""Gemini's ``models/{model}:batchEmbedContents`` for a batch of texts (one request per call, whatever
the batch's size). Gemini reports no token usage for embeddings: ``prompt_tokens`` is None and the
relay bills its estimate. ``dimensions`` becomes each request's ``outputDimensionality``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from tokenhub.errors import GatewayError, UpstreamError
from tokenhub.providers.base import UpstreamRequest, upstream_error
from tokenhub.providers.embeddings import Embedded, Input
from tokenhub.providers.gemini.wire import credentials_rejected, error_detail, retry_after_from_body
from tokenhub.upstream import Channel


class GeminiEmbeddings:
    def build_request(self, inputs: list[Input], upstream_model: str, channel: Channel, dimensions: int | None) -> UpstreamRequest:
        name = f"models/{upstream_model}"
        requests: list[dict[str, Any]] = []
        for text in inputs:
            item: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
            if dimensions is not None:
                item["outputDimensionality"] = dimensions
            requests.append(item)
        return UpstreamRequest(
            url=f"{channel.base_url.rstrip('/')}/v1beta/models/{quote(upstream_model, safe='-._~')}:batchEmbedContents",
            headers={"x-goog-api-key": channel.api_key, "Content-Type": "application/json"},
            body=orjson.dumps({"requests": requests}),
        )

    def parse_response(self, body: bytes, count: int) -> Embedded:
        try:
            vectors = [[float(x) for x in item["values"]] for item in orjson.loads(body)["embeddings"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UpstreamError("the upstream provider sent embeddings the gateway cannot read", code="upstream_bad_response") from None
        if len(vectors) != count:
            raise UpstreamError(f"the upstream provider sent {len(vectors)} embeddings for {count} inputs", code="upstream_bad_response")
        return Embedded(vectors, None)

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
        if credentials_rejected(status, body):
            status = 401  # Google refuses a bad key with 400: our credential, not the client's request
        return upstream_error(status, error_detail(body), channel, retry_after or retry_after_from_body(body))
