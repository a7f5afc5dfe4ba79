"""OpenAI's legacy text completions (``POST /completions``), passed through to OpenAI-protocol channels.

Only models the catalog marks ``completions: true`` (their upstream still serves the endpoint) answer;
the client's body goes upstream as it is but for ``model``, ``max_tokens`` (what the hold covers: the
client's figure, else OpenAI's default of 16) and, when streaming, ``stream_options.include_usage``.
The answer relays like a chat pass-through (``OpenAIBytePipe``): ``model`` rewritten, ``usage.cost``
added. No other upstream protocol has the endpoint: a route to one refuses the request (400).
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenhub.errors import InvalidRequest
from tokenhub.providers.base import UpstreamRequest
from tokenhub.providers.openai.responder import OpenAIResponder
from tokenhub.upstream import Route

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /completions


def prompt_text(prompt: Any) -> str:
    """The prompt as text, for the hold's estimate (token arrays as their numbers: more bytes than tokens)."""
    if isinstance(prompt, str) and prompt:
        return prompt
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return "\n".join(prompt)
        if all(isinstance(t, int) for t in prompt):
            return " ".join(map(str, prompt))
        if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
            return "\n".join(" ".join(map(str, p)) for p in prompt)
    raise InvalidRequest("'prompt' is required: a string, a list of strings, or token arrays", param="prompt")


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    """A chat payload standing for the request, for validation and the hold (never sent upstream)."""
    view: dict[str, Any] = {"model": body.get("model"), "messages": [{"role": "user", "content": prompt_text(body.get("prompt"))}]}
    max_tokens = body.get("max_tokens")
    view["max_tokens"] = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    prompts = body.get("prompt")
    count = len(prompts) if isinstance(prompts, list) and prompts and not isinstance(prompts[0], int) else 1
    best_of = body.get("best_of") or 1
    n = body.get("n") or 1
    if not isinstance(best_of, int) or not isinstance(n, int) or isinstance(best_of, bool) or isinstance(n, bool):
        raise InvalidRequest("'n' and 'best_of' must be integers", param="n")
    view["n"] = max(n, best_of) * count  # every prompt, every candidate generated (best_of is billed too)
    for name in ("stream", "stream_options"):
        if name in body:
            view[name] = body[name]
    return view


class CompletionsRequest:
    """The client's own /completions body, for the OpenAI-protocol routes that serve it."""

    def __init__(self, body: dict[str, Any], stream: bool) -> None:
        self.body = body
        self.stream = stream

    def native(self, route: Route, max_output: int) -> UpstreamRequest:
        body = {**self.body, "model": route.upstream_id, "max_tokens": max_output}
        if self.stream:
            options = body.get("stream_options")
            body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
        channel = route.channel
        return UpstreamRequest(
            url=f"{channel.base_url}/completions",
            headers={"Authorization": f"Bearer {channel.api_key}", "Content-Type": "application/json",
                     "Accept": "text/event-stream" if self.stream else "application/json"},  # fmt: skip
            body=orjson.dumps(body),
            max_output=max_output,
        )

    def translated(self) -> None:
        raise InvalidRequest("this model's upstream has no legacy /completions endpoint; use /chat/completions", param="model")


class CompletionsResponder(OpenAIResponder):
    endpoint = "completions"
