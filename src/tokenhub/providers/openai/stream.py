"""An OpenAI-protocol upstream's stream, one event at a time: what each ``chat.completion.chunk`` says
(text, finish reason, usage, an error, ``[DONE]``) goes to the meter; the chunk itself is already in
the gateway's canonical shape, so translating it is only hiding its usage (the responder writes the
usage chunk, with the cost) and naming the client's model.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenhub.providers.base import MalformedChunk, Meter, collect_text
from tokenhub.providers.openai.wire import read_usage
from tokenhub.sse import Event

_CONTENT_ONLY = frozenset(("role", "content"))


class OpenAIStreamReader:
    def __init__(self, client_model: str, meter: Meter) -> None:
        self._model = client_model
        self._meter = meter

    def read(self, event: Event) -> dict[str, Any] | None:
        meter = self._meter
        if event.data == b"[DONE]":
            meter.finished = True
            return None
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise MalformedChunk("the upstream sent a malformed stream chunk") from None
        if type(obj) is not dict:
            raise MalformedChunk("the upstream sent a malformed stream chunk")
        err = obj.get("error")
        if err:
            meter.error = err if type(err) is dict else {"message": str(err)}
            return None
        choices = obj.get("choices")
        if type(choices) is list:  # (checks by type, not isinstance: JSON makes no subclasses; this runs per event)
            for choice in choices:
                if type(choice) is not dict:
                    continue
                delta = choice.get("delta")
                if type(delta) is dict:
                    content = delta.get("content")
                    if type(content) is str and len(delta) == 1:  # most chunks: the text and nothing else
                        meter.pieces.append(content)
                    elif delta.keys() <= _CONTENT_ONLY:  # the text and a role
                        if type(content) is str:
                            meter.pieces.append(content)
                    else:
                        collect_text(delta, meter.pieces)
                elif type(text := choice.get("text")) is str:  # a legacy text completion's chunk
                    meter.pieces.append(text)
                finish = choice.get("finish_reason")
                if finish:
                    meter.finish_reason = str(finish)
                    meter.finished = True
        raw_usage = obj.get("usage")
        if raw_usage is not None:
            meter.usage = read_usage(raw_usage) or meter.usage  # malformed: as if absent (the relay estimates)
        return obj

    def chunks(self, parsed: dict[str, Any] | None) -> list[dict[str, Any]]:
        if parsed is None:
            return []
        parsed.pop("usage", None)
        if not parsed.get("choices"):
            return []
        parsed["model"] = self._model
        return [parsed]

    def close(self) -> list[dict[str, Any]]:
        return []
