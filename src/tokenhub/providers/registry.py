"""The one registry of wire protocols: a channel's protocol name -> the adapter that speaks it.

Adding an upstream protocol is its package plus one line here (and a vendor row in
``tokenhub/vendors.py``). Nothing else names a protocol: ``tests/providers/test_registry.py`` reads
the source and fails on a protocol name anywhere but here and the vendor rows. Client protocols need
no line: each route module holds its responder, and a responder's ``passthrough`` names the
adapters it relays as classes, not names.
"""

from __future__ import annotations

import functools

from tokenhub.providers.anthropic.adapter import AnthropicAdapter
from tokenhub.providers.base import ChatAdapter
from tokenhub.providers.embeddings import EmbeddingAdapter
from tokenhub.providers.gemini.adapter import GeminiAdapter
from tokenhub.providers.gemini.embeddings import GeminiEmbeddings
from tokenhub.providers.media.base import ImageAdapter, VideoAdapter
from tokenhub.providers.openai.adapter import OpenAIAdapter
from tokenhub.providers.openai.embeddings import OpenAIEmbeddings
from tokenhub.providers.responses.upstream import ResponsesAdapter
from tokenhub.upstream import Channel
from tokenhub.vendors import PROVIDERS

CHAT_ADAPTERS: dict[str, ChatAdapter] = {
    "openai": OpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
}
EMBEDDING_ADAPTERS: dict[str, EmbeddingAdapter] = {
    "openai": OpenAIEmbeddings(),
    "gemini": GeminiEmbeddings(),
}


# The media protocols load with the first image or video request (or a video task to poll): a gateway
# that serves chat never needs them (idle memory: bench/README.md).
@functools.cache
def video_adapters() -> dict[str, VideoAdapter]:
    from tokenhub.providers.media.ark import ArkVideoAdapter
    from tokenhub.providers.media.dashscope import DashScopeVideoAdapter
    from tokenhub.providers.media.kling import KlingVideoAdapter

    return {"ark": ArkVideoAdapter(), "kling": KlingVideoAdapter(), "dashscope": DashScopeVideoAdapter()}


@functools.cache
def image_adapters() -> dict[str, ImageAdapter]:
    from tokenhub.providers.media.ark import ArkImageAdapter

    return {"ark": ArkImageAdapter()}


RESPONSES = ResponsesAdapter()  # OpenAI's Responses API, on the channels of vendors whose row says they serve it


def chat_adapter(protocol: str) -> ChatAdapter:
    """The chat adapter of a channel's wire protocol."""
    return CHAT_ADAPTERS[protocol]


def speaks_responses(channel: Channel) -> bool:
    vendor = PROVIDERS.get(channel.provider)
    return vendor is not None and vendor.responses


def chat_adapter_for(channel: Channel, *, responses: bool) -> ChatAdapter:
    """The adapter a request uses on ``channel``: its Responses endpoint when ``responses`` is wanted (a
    Responses-only model, or a Responses client to pass through) and the channel serves it, else its protocol's."""
    return RESPONSES if responses and speaks_responses(channel) else CHAT_ADAPTERS[channel.protocol]
