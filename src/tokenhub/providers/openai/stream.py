"""An OpenAI-protocol upstream's stream, one event at a time: what each ``chat.completion.chunk`` says
(text, finish reason, usage, an error, ``[DONE]``) goes to the meter; the chunk itself is already in
the gateway's canonical shape, so translating it is only hiding its usage (the responder writes the
usage chunk, with the cost) and naming the client's model.

The pass-through pipe, which forwards each payload's bytes, first asks ``skim``: a text delta (its one
finish reason null, its usage null or absent, no error) tells the meter nothing now but its text, which
counts only if the upstream never reports usage. Such a chunk, most of a stream, is kept undecoded and
decoded only if its text is counted (``Meter.text_later``): decoding each was 12 % of a relayed stream's
instructions (at most ``SKIM_LIMIT`` bytes are kept undecoded). A payload that ends as a text delta does but
is not JSON is forwarded as it came, as a proxy would, and its text not counted; any other malformed payload
ends the stream.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from tokenhub.providers.base import MalformedChunk, Meter, collect_text
from tokenhub.providers.openai.wire import read_usage
from tokenhub.sse import Event

_CONTENT_ONLY: Final = frozenset(("role", "content"))
# How an OpenAI text delta ends: its one choice's null finish reason, then the null usage of a stream that
# asked for usage (the gateway always asks) and OpenAI's own padding (``obfuscation``, a short alphanumeric
# string, unless the client turned it off), or neither.
_BEFORE_PADDING: Final = b'"finish_reason":null}],"usage":null'
_TEXT_DELTA_END: Final = _BEFORE_PADDING + b"}"
_TEXT_DELTA_END_NO_USAGE: Final = b'"finish_reason":null}]}'
_PADDING: Final = b',"obfuscation":"'
# The most a stream keeps undecoded: past it, what was kept is decoded into the meter's text (as every
# chunk once was), so a long stream holds no more than this besides its text (~800 chunks of OpenAI's).
SKIM_LIMIT: Final = 256 * 1024


class OpenAIStreamReader:
    def __init__(self, client_model: str, meter: Meter) -> None:
        self._model = client_model
        self._meter = meter
        self._skimmed: list[bytes] = []  # payloads forwarded undecoded, their text not yet in the meter
        self._skimmed_size = 0

    def skim(self, data: bytes) -> bool:
        """True for a payload that tells the meter nothing now but its text, kept to decode when the text
        counts: a text delta as OpenAI spells it, ending in a null finish reason (and, when asked for, a null
        usage, then perhaps OpenAI's padding), with no other finish reason and no error anywhere in it. Keys
        are found as bytes (a quote inside a JSON string is escaped, so ``"error":`` can only be a key): a few
        searches of the payload where decoding it cost ~9 k instructions."""
        if data.endswith(_TEXT_DELTA_END):
            end = len(data) - len(_TEXT_DELTA_END)
        elif data.endswith(b'"}'):  # the padding last: a string with no quote in it, then the payload's end
            padding = data.rfind(_PADDING)
            end = padding - len(_BEFORE_PADDING)
            if padding < len(_BEFORE_PADDING) or data.find(b'"', padding + len(_PADDING)) != len(data) - 2 or not data.startswith(_BEFORE_PADDING, end):
                return False
        elif data.endswith(_TEXT_DELTA_END_NO_USAGE) and data.find(b'"usage":') < 0:
            end = len(data) - len(_TEXT_DELTA_END_NO_USAGE)
        else:
            return False
        if data.find(b'"finish_reason":') != end or data.find(b'"error":') >= 0 or not data.startswith(b'{"'):
            return False
        if not self._skimmed:
            self._meter.text_later = self._decode_skimmed
        self._skimmed.append(data)
        self._skimmed_size += len(data)
        if self._skimmed_size > SKIM_LIMIT:
            self._decode_skimmed()
        return True

    def _decode_skimmed(self) -> None:
        pieces = self._meter.pieces
        for data in self._skimmed:
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue  # forwarded as it came; it has no text to count
            choices = obj.get("choices") if type(obj) is dict else None
            if type(choices) is list:
                for choice in choices:
                    if type(choice) is dict:
                        _choice_text(choice, pieces)
        self._skimmed.clear()
        self._skimmed_size = 0

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
                _choice_text(choice, meter.pieces)
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


def _choice_text(choice: dict[str, Any], pieces: list[str]) -> None:
    """A chunk's choice's generated text, into ``pieces``."""
    delta = choice.get("delta")
    if type(delta) is dict:
        content = delta.get("content")
        if type(content) is str and len(delta) == 1:  # most chunks: the text and nothing else
            pieces.append(content)
        elif delta.keys() <= _CONTENT_ONLY:  # the text and a role
            if type(content) is str:
                pieces.append(content)
        else:
            collect_text(delta, pieces)
    elif type(text := choice.get("text")) is str:  # a legacy text completion's chunk
        pieces.append(text)
