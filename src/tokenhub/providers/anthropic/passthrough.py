"""A Messages client's own request, for routes whose upstream is Anthropic itself (pass-through).

The client's body and headers go upstream unchanged but for the model id, our key and the output
bound the hold covers, so Claude Code's betas, tools, thinking and context management keep working.
Routes to any other upstream get the translation (``inbound.py``), and refuse what only Anthropic
can take (Files API documents, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from tokenhub.providers.anthropic.inbound import Translation
from tokenhub.providers.anthropic.wire import ANTHROPIC_VERSION, messages_url
from tokenhub.providers.base import UpstreamRequest
from tokenhub.providers.client_fields import without_upstream_fields
from tokenhub.upstream import Route

PASSED_HEADERS = ("anthropic-beta",)


def client_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers an Anthropic upstream should see."""
    return {name: headers[name] for name in PASSED_HEADERS if name in headers}


def native_request(
    body: dict[str, Any],
    route: Route,
    headers: Mapping[str, str],
    *,
    beta: bool = False,
    path: str = "/messages",
    max_output: int | None = None,
) -> UpstreamRequest:
    """The client's Anthropic request for an Anthropic upstream: its body with our model id, our key and
    ``max_output`` as ``max_tokens`` (the client's, clamped to the model's cap: what the hold covers)."""
    forwarded = dict(without_upstream_fields(body))  # never forwarded: the gateway picks the upstream and its key
    forwarded["model"] = route.upstream_id
    if max_output is not None:
        forwarded["max_tokens"] = max_output
    url = messages_url(route.channel.base_url) + path.removeprefix("/messages")
    if beta:
        url += "?beta=true"
    upstream_headers = {
        "x-api-key": route.channel.api_key,
        "anthropic-version": headers.get("anthropic-version") or ANTHROPIC_VERSION,
        "content-type": "application/json",
        **client_headers(headers),
    }
    max_tokens = forwarded.get("max_tokens")
    return UpstreamRequest(
        url, upstream_headers, orjson.dumps(forwarded), max_output=max_tokens if isinstance(max_tokens, int) else None
    )


@dataclass
class MessagesRequest:
    """A /messages request as the relay's ``ClientRequest``: the body to forward natively, or its translation."""

    body: dict[str, Any]  # what goes to an Anthropic upstream (server tools priced and capped)
    translation: Translation
    headers: Mapping[str, str]
    beta: bool = False

    def native(self, route: Route, max_output: int) -> UpstreamRequest:
        return native_request(self.body, route, self.headers, beta=self.beta, max_output=max_output)

    def translated(self) -> None:
        self.translation.require_translatable()  # what only Anthropic itself understands (file ids, ...)
