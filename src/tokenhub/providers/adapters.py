"""One place to register: wire protocol name -> chat adapter."""

from __future__ import annotations

from tokenhub.providers.anthropic.adapter import AnthropicAdapter
from tokenhub.providers.base import ChatAdapter
from tokenhub.providers.gemini.adapter import GeminiAdapter
from tokenhub.providers.openai.adapter import OpenAIAdapter

CHAT_ADAPTERS: dict[str, ChatAdapter] = {
    "openai": OpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
    "gemini": GeminiAdapter(),
}


def chat_adapter(protocol: str) -> ChatAdapter:
    """The chat adapter of a channel's wire protocol."""
    return CHAT_ADAPTERS[protocol]
