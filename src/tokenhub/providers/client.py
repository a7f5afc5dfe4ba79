"""What every client side answers: the contract of a responder and its pipes.

A *responder* speaks the client's protocol: it answers a complete chat completion
(``completion``) and makes the *pipe* a stream goes through (``pipe``): upstream SSE events in, the
client's bytes out. What the events say is the meter's (the relay's, fed by the upstream adapter's
reader); a pipe only turns events into bytes.

Pass-through is data: a responder's ``passthrough`` maps the upstream adapters whose events its
client protocol can take as they came to the pipe that relays them as bytes (OpenAI client, OpenAI
upstream: each payload forwarded with only ``model`` rewritten). Every other upstream goes through
its ``translating`` pipe, fed with the reader's OpenAI chunks.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping, Protocol

from aiohttp import web

from tokenhub.errors import GatewayError
from tokenhub.providers.base import ChatAdapter, Meter, StreamReader, UpstreamRequest
from tokenhub.sse import Event
from tokenhub.tokens import Usage
from tokenhub.upstream import Channel, Route

CostText = Callable[[Usage], str]  # the exact USD text of a usage's cost
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Pipe(Protocol):
    """Upstream SSE events in, bytes for the client out."""

    def feed(self, event: Event) -> bytes: ...

    def close(self) -> bytes: ...

    def ending(self, usage: Usage, cost_text: str) -> bytes:
        """The stream's last bytes after a complete answer (a usage chunk, ``[DONE]``, ...)."""
        ...

    def error_tail(self, err: GatewayError | dict[str, Any]) -> bytes:
        """The last bytes of a stream cut short by ``err`` (an error event in the client's protocol)."""
        ...


class ClientRequest(Protocol):
    """A client's own request, for the routes whose upstream speaks the client's protocol (pass-through)."""

    def native(self, route: Route, max_output: int) -> UpstreamRequest:
        """The client's request as that upstream takes it: our model id, our key, ``max_output`` as its bound."""
        ...

    def translated(self) -> None:
        """Called when a route needs the translation: refuses what only the client's protocol can carry."""
        ...


PipeFactory = Callable[[Any, StreamReader, Meter, CostText, Channel], Pipe]


class Responder:
    """The client side's base: the pipe for an upstream, chosen from ``passthrough`` (data), else ``translating``."""

    sse_headers: ClassVar[dict[str, str]] = SSE_HEADERS
    endpoint: ClassVar[str]  # for metrics and usage records: chat | messages | ...
    passthrough: ClassVar[Mapping[type, PipeFactory]] = {}
    translating: ClassVar[Callable[..., Pipe]]  # a PipeFactory (a callable attribute typed as one reads as a method)
    client_model: str

    def completion(self, body: dict[str, Any], usage: Usage, cost_text: str) -> web.Response:
        raise NotImplementedError

    @classmethod
    def relays(cls, adapter: object) -> bool:
        """Whether this client protocol takes ``adapter``'s upstream as it is (pass-through)."""
        return type(adapter) in cls.passthrough

    def pipe(self, adapter: ChatAdapter, meter: Meter, cost_text: CostText, channel: Channel) -> Pipe:
        reader = adapter.stream_reader(self.client_model, meter)
        factory = self.passthrough.get(type(adapter), type(self).translating)
        return factory(self, reader, meter, cost_text, channel)
