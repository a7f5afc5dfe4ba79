"""OpenAI Chat Completions, spoken by OpenAI and every OpenAI-compatible vendor, as a ``ChatAdapter``."""

from __future__ import annotations

from typing import Any

import orjson

from tokenhub.errors import UpstreamError
from tokenhub.providers.base import (
    AdapterDefaults,
    Completion,
    Meter,
    UpstreamRequest,
)
from tokenhub.providers.openai.request import build_request
from tokenhub.providers.openai.stream import OpenAIStreamReader
from tokenhub.providers.openai.wire import error_detail, read_usage
from tokenhub.upstream import Channel


class OpenAIAdapter(AdapterDefaults):
    """The OpenAI protocol as a ``ChatAdapter``; the relay also has a byte-level fast path for it."""

    capabilities = frozenset({"stream", "tools", "vision", "json_schema", "reasoning"})

    def build_request(
        self,
        payload: dict[str, Any],
        upstream_model: str,
        channel: Channel,
        *,
        stream: bool,
        max_output: int | None = None,
        **_unused: Any,
    ) -> UpstreamRequest:
        return build_request(payload, upstream_model, channel, stream=stream, max_output=max_output)

    def parse_response(self, body: bytes) -> Completion:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            if isinstance(obj, dict) and obj.get("error"):
                raise UpstreamError(f"The upstream provider failed: {error_detail(body)}", code="upstream_error")
            raise UpstreamError(
                "the upstream provider sent a response that is not a chat completion", code="upstream_bad_response"
            )
        return Completion(obj, read_usage(obj.get("usage")))

    def stream_reader(self, client_model: str, meter: Meter) -> OpenAIStreamReader:
        return OpenAIStreamReader(client_model, meter)
