"""A chat request in OpenAI's shape: the few fields the relay reads, validated; the rest is forwarded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from tokenhub.errors import InvalidRequest
from tokenhub.providers.client_fields import without_upstream_fields
from tokenhub.relay.extensions import NONE, Extensions, take_extensions

MAX_N: Final = 128


@dataclass
class ChatCall:
    """What the relay needs to know of a chat request; the rest is forwarded untouched."""

    payload: dict[str, Any]
    model_name: str
    stream: bool
    include_usage: bool
    max_output: int | None
    n: int
    # Input whose size the gateway cannot see (a document the upstream keeps, a part translation left
    # out): the hold then covers the model's whole context window.
    opaque_input: bool = False

    def output_bound(self, cap: int) -> int:
        """The output tokens per choice to forward and hold for: the client's bound, never above ``cap``."""
        return min(self.max_output, cap) if self.max_output else cap
    # server tools the upstream may run, by price kind -> the most uses the forwarded request allows
    # (set by the surface that knows them, e.g. /messages; billing.cost.tool_hold prices the hold)
    server_tools: dict[str, int] = field(default_factory=dict)
    extensions: Extensions = NONE  # OpenRouter's fields, taken out of the payload (relay/extensions.py)

    @property
    def models(self) -> list[str]:
        """The model asked for, then its fallbacks (OpenRouter's ``models``), each once."""
        return list(dict.fromkeys((self.model_name, *self.extensions.fallback_models)))

    @classmethod
    def parse(cls, payload: Any) -> "ChatCall":
        if not isinstance(payload, dict):
            raise InvalidRequest("the request body must be a JSON object")
        payload = without_upstream_fields(payload)  # never forwarded: the gateway picks the upstream and its key
        payload, extensions = take_extensions(payload)
        model = payload.get("model")
        if not model and extensions.fallback_models:  # OpenRouter: `models` alone names the first choice
            model = payload["model"] = extensions.fallback_models[0]
        if not isinstance(model, str) or not model.strip() or len(model) > 200:
            raise InvalidRequest("'model' is required: a model id such as openai/gpt-4.1", param="model")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' is required: a non-empty array of messages", param="messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequest(f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
        stream = payload.get("stream", False)
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise InvalidRequest("'stream' must be true or false", param="stream")
        options = payload.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object", param="stream_options")
        include_usage = bool(options and options.get("include_usage") is True)
        max_output = None
        for name in ("max_completion_tokens", "max_tokens"):
            value = payload.get(name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
            max_output = value if max_output is None else min(max_output, value)
        n = payload.get("n", 1)
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
            raise InvalidRequest(f"'n' must be an integer from 1 to {MAX_N}", param="n")
        return cls(payload, model.strip(), stream, include_usage, max_output, n, extensions=extensions)
