"""Google Gemini ``generateContent`` / ``streamGenerateContent?alt=sse`` as a ``ChatAdapter``."""

from __future__ import annotations

from typing import Any

from tokenhub.errors import GatewayError
from tokenhub.providers.base import (
    Completion,
    Meter,
    UpstreamRequest,
    upstream_error,
)
from tokenhub.providers.gemini.request import Images, build_request, remote_image_urls
from tokenhub.providers.gemini.response import parse_response
from tokenhub.providers.gemini.stream import GeminiStreamReader
from tokenhub.providers.gemini.wire import credentials_rejected, error_detail, retry_after_from_body
from tokenhub.upstream import Channel


class GeminiAdapter:
    capabilities = frozenset({"stream", "tools", "vision", "json_schema", "reasoning"})

    def build_request(
        self,
        payload: dict[str, Any],
        upstream_model: str,
        channel: Channel,
        *,
        stream: bool,
        images: Images | None = None,
        max_output: int | None = None,
        **_unused: Any,  # output_ceiling (no room is added), extra_headers (nothing to pass on)
    ) -> UpstreamRequest:
        return build_request(payload, upstream_model, channel, stream=stream, images=images, max_output=max_output)

    def parse_response(self, body: bytes) -> Completion:
        return parse_response(body)

    def error_detail(self, body: bytes) -> str:
        return error_detail(body)

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError:
        if credentials_rejected(status, body):
            status = 401  # Google refuses a bad key with 400: it is our credential, not the client's request
        return upstream_error(status, error_detail(body), channel, retry_after or retry_after_from_body(body))

    def remote_images(self, payload: dict[str, Any]) -> list[str]:
        return remote_image_urls(payload)

    def stream_reader(self, client_model: str, meter: Meter) -> GeminiStreamReader:
        return GeminiStreamReader(client_model, meter)
