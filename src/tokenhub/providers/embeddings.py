"""What every embeddings adapter answers: the upstream request for a batch of inputs, and its vectors back.

    EmbeddingAdapter
      build_request(inputs, upstream_model, channel, dimensions)  -> UpstreamRequest
      parse_response(body bytes, count)                           -> Embedded (vectors in input order,
                                                                     the upstream's token count or None)
      error(status, body, channel, retry_after)                   -> GatewayError

An input is a string or a list of token ids (only for upstreams that take them; the relay checks the
catalog's ``token_arrays`` first). Adapters are pure translation, like the chat adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union

from tokenhub.errors import GatewayError
from tokenhub.providers.base import UpstreamRequest
from tokenhub.upstream import Channel

Input = Union[str, list[int]]


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    prompt_tokens: int | None  # None: the upstream reports no usage (Gemini); the relay estimates


class EmbeddingAdapter(Protocol):
    def build_request(self, inputs: list[Input], upstream_model: str, channel: Channel, dimensions: int | None) -> UpstreamRequest: ...

    def parse_response(self, body: bytes, count: int) -> Embedded: ...

    def error(self, status: int, body: bytes, channel: Channel, retry_after: str | None) -> GatewayError: ...
