"""The Anthropic Messages API as a ``ChatAdapter``: request.py, response.py and stream.py put together."""

from __future__ import annotations

from typing import Any

import orjson

from tokenhub.errors import UpstreamError
from tokenhub.providers.anthropic.request import build_request
from tokenhub.providers.anthropic.response import parse_message
from tokenhub.providers.anthropic.stream import AnthropicStreamReader
from tokenhub.providers.anthropic.wire import error_detail
from tokenhub.providers.base import (
    AdapterDefaults,
    Completion,
    Meter,
    UpstreamRequest,
)
from tokenhub.upstream import Channel


class AnthropicAdapter(AdapterDefaults):
    """The Anthropic Messages protocol as a ``ChatAdapter``."""

    capabilities = frozenset({"stream", "tools", "vision", "json_schema", "reasoning"})

    def build_request(
        self,
        payload: dict[str, Any],
        upstream_model: str,
        channel: Channel,
        *,
        stream: bool,
        max_output: int | None = None,
        output_ceiling: int | None = None,
        extra_headers: dict[str, str] | None = None,
        anthropic_version: str | None = None,
        **_unused: Any,
    ) -> UpstreamRequest:
        return build_request(
            payload,
            upstream_model,
            channel,
            stream=stream,
            max_output=max_output,
            output_ceiling=output_ceiling,
            extra_headers=extra_headers,
            anthropic_version=anthropic_version,
        )

    def parse_response(self, body: bytes) -> Completion:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and (obj.get("type") == "error" or isinstance(obj.get("error"), dict)):
            raise UpstreamError(f"The upstream provider failed: {error_detail(body)}", code="upstream_error")
        if not isinstance(obj, dict) or obj.get("type", "message") != "message" or not isinstance(obj.get("content"), list):
            raise UpstreamError("the upstream provider sent a response that is not a message", code="upstream_bad_response")
        return parse_message(obj)

    def stream_reader(self, client_model: str, meter: Meter) -> AnthropicStreamReader:
        return AnthropicStreamReader(client_model, meter)
