"""The OpenAI pass-through pipe names the client's model in every chunk, however the upstream spells its own."""

from __future__ import annotations

import orjson

from tokenhub.providers.openai.adapter import OpenAIAdapter
from tokenhub.providers.openai.responder import OpenAIResponder
from tokenhub.relay.meter import StreamMeter
from tokenhub.sse import SSEDecoder


def _chunk(model_field: bytes, text: str) -> bytes:
    return b'data: {"id":"c1","object":"chat.completion.chunk",' + model_field + b',"choices":[{"index":0,"delta":{"content":' + orjson.dumps(text) + b"}}]}\n\n"


def test_every_chunk_gets_the_client_model_even_when_the_upstream_changes_its_spelling():
    stream = (
        _chunk(b'"model":"gpt-4.1"', 'say "model":"gpt-4.1"')
        + _chunk(b'"model":"gpt-4.1"', "again")
        + _chunk(b'"model" : "gpt-4.1-2025-04-14"', "dated")
        + _chunk(b'"model":"gpt-4.1"', "back")
    )
    meter = StreamMeter()
    pipe = OpenAIResponder("openai/gpt-4.1", include_usage=False).pipe(OpenAIAdapter.__new__(OpenAIAdapter), meter, lambda u: "0", None)
    out = b"".join(pipe.feed(event) for event in SSEDecoder().feed(stream))
    chunks = [orjson.loads(event.data) for event in SSEDecoder().feed(out)]
    assert [c["model"] for c in chunks] == ["openai/gpt-4.1"] * 4
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ['say "model":"gpt-4.1"', "again", "dated", "back"]
    assert "".join(meter.pieces) == 'say "model":"gpt-4.1"againdatedback'
