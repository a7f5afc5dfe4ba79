"""An adapter's stream reader with its meter, driven as the translating pipes drive it: an event in,
OpenAI chunks out; what the events said read back from the relay's meter."""

from __future__ import annotations

from typing import Any

from tokenhub.providers.base import ChatAdapter
from tokenhub.relay.meter import StreamMeter
from tokenhub.sse import Event


class ReadStream:
    def __init__(self, adapter: ChatAdapter, client_model: str) -> None:
        self.meter = StreamMeter()
        self.reader = adapter.stream_reader(client_model, self.meter)

    def feed(self, event: Event) -> list[dict[str, Any]]:
        return self.reader.chunks(self.reader.read(event))

    def close(self) -> list[dict[str, Any]]:
        return self.reader.close()

    def __getattr__(self, name: str) -> Any:  # usage, finish_reason, error, finished, pieces, tool_uses
        return getattr(self.meter, name)
