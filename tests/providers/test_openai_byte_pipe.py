"""The OpenAI pass-through pipe: the client's model in every chunk, however the upstream spells its own; the
text deltas forwarded undecoded, the meter told exactly what decoding every chunk would tell it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tokenhub.providers.base import MalformedChunk
from tokenhub.providers.openai.adapter import OpenAIAdapter
from tokenhub.providers.openai.responder import OpenAIResponder
from tokenhub.providers.openai.stream import SKIM_LIMIT
from tokenhub.relay.meter import StreamMeter
from tokenhub.sse import Event, SSEDecoder
from tokenhub.tokens import Usage


def _chunk(model_field: bytes, text: str, chunk_id: bytes = b"c1") -> bytes:
    head = b'data: {"id":"' + chunk_id + b'","object":"chat.completion.chunk",'
    return head + model_field + b',"choices":[{"index":0,"delta":{"content":' + orjson.dumps(text) + b"}}]}\n\n"


def test_every_chunk_gets_the_client_model_even_when_the_upstream_changes_its_spelling():
    stream = (
        _chunk(b'"model":"gpt-4.1"', 'say "model":"gpt-4.1"')
        + _chunk(b'"model":"gpt-4.1"', "again")
        + _chunk(b'"model" : "gpt-4.1-2025-04-14"', "dated")
        + _chunk(b'"model":"gpt-4.1"', "back")
        + _chunk(b'"model":"gpt-4.1"', "moved", chunk_id=b"c1-longer")  # the field further in
        + _chunk(b'"model":"gpt-4.1"', "first", chunk_id=b"c")  # and nearer the start
    )
    meter = StreamMeter()
    pipe = OpenAIResponder("openai/gpt-4.1", include_usage=False).pipe(OpenAIAdapter.__new__(OpenAIAdapter), meter, lambda u: "0", None)
    out = b"".join(pipe.feed(event) for event in SSEDecoder().feed(stream))
    chunks = [orjson.loads(event.data) for event in SSEDecoder().feed(out)]
    assert [c["model"] for c in chunks] == ["openai/gpt-4.1"] * 6
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ['say "model":"gpt-4.1"', "again", "dated", "back", "moved", "first"]
    assert [c["id"] for c in chunks] == ["c1"] * 4 + ["c1-longer", "c"]
    assert meter.delivered_text() == 'say "model":"gpt-4.1"againdatedbackmovedfirst'


def _pipe(meter: StreamMeter, include_usage: bool = False) -> Any:
    return OpenAIResponder("openai/gpt-4.1", include_usage=include_usage).pipe(OpenAIAdapter.__new__(OpenAIAdapter), meter, lambda u: "0", None)


HEAD = b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4.1",'
PAYLOADS = [
    HEAD + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}',
    # keys spelled inside the text: escaped quotes, so not keys
    HEAD + b'"choices":[{"index":0,"delta":{"content":' + orjson.dumps('"usage":{"total_tokens":9} "error":1 "finish_reason":"stop"')
    + b'},"logprobs":null,"finish_reason":null}],"usage":null}',
    HEAD + b'"choices":[{"index":0,"delta":{"content":"caf\\u00e9 \\\\"},"finish_reason":null}]}',  # no usage key at all
    HEAD + b'"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\\"a\\":1}"}}]},'
    b'"finish_reason":null}],"usage":null}',
    HEAD + b'"choices":[{"index":0,"text":"legacy text","finish_reason":null}],"usage":null}',
    # a usage deeper down is not the chunk's (undecoded too); a spelling with spaces: decoded at once, as before
    HEAD + b'"choices":[{"index":0,"delta":{"content":"deep","usage":{"completion_tokens":3}},"finish_reason":null}],"usage":null}',
    b'{"id": "chatcmpl-1", "model": "gpt-4.1", "choices": [{"index": 0, "delta": {"content": "spaced"}, "finish_reason": null}], "usage": null}',
    # OpenAI's padding last: a text delta still; one whose padding holds an escaped quote is decoded at once
    HEAD + b'"choices":[{"index":0,"delta":{"content":"padded"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x7Yq"}',
    HEAD + b'"choices":[{"index":0,"delta":{"content":"quoted"},"finish_reason":null}],"usage":null,"obfuscation":"a\\"b"}',
    HEAD + b'"choices":[{"index":0,"delta":{"content":"end"},"logprobs":null,"finish_reason":"length"}],"usage":null,"obfuscation":"Q"}',
    HEAD + b'"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}',
    b"[DONE]",
]


def _meter_state(meter: StreamMeter) -> tuple[Any, ...]:
    meter.delivered_text()
    return meter.usage, meter.finish_reason, meter.finished, meter.error, sorted(meter.pieces), meter.delivered_tokens()


def test_the_pipe_tells_the_meter_what_decoding_every_chunk_tells_it():
    eager = StreamMeter()
    reader = OpenAIAdapter.__new__(OpenAIAdapter).stream_reader("openai/gpt-4.1", eager)
    for payload in PAYLOADS:
        reader.read(Event(b"", payload))
    meter = StreamMeter()
    pipe = _pipe(meter, include_usage=True)
    out = b"".join(pipe.feed(Event(b"", payload)) for payload in PAYLOADS)
    assert meter.pieces == ["spaced", "quoted", "end"], "the text deltas wait, undecoded, until their text is counted"
    assert _meter_state(meter) == _meter_state(eager)
    assert meter.usage == Usage(5, 7) and meter.finish_reason == "length"
    assert "legacy text" in meter.delivered_text() and '"usage":{"total_tokens":9}' in meter.delivered_text() and '{"a":1}' in meter.delivered_text()
    forwarded = [orjson.loads(event.data) for event in SSEDecoder().feed(out)]
    assert [chunk["model"] for chunk in forwarded] == ["openai/gpt-4.1"] * 11
    assert [orjson.loads(p) | {"model": "openai/gpt-4.1"} for p in PAYLOADS[:10]] == forwarded[:10]
    assert forwarded[10]["usage"]["cost"] == 0


def test_an_error_or_a_malformed_chunk_is_caught_however_it_is_spelt():
    meter = StreamMeter()
    pipe = _pipe(meter)
    assert pipe.feed(Event(b"", HEAD + b'"choices":[],"error":{"message":"overloaded"},"usage":null,"finish_reason":null}')) == b""
    assert meter.error == {"message": "overloaded"}
    with pytest.raises(MalformedChunk):
        _pipe(StreamMeter()).feed(Event(b"", HEAD + b'"choices":[{"ind'))  # cut short
    with pytest.raises(MalformedChunk):
        _pipe(StreamMeter()).feed(Event(b"", b'[{"finish_reason":null}]'))  # JSON, not a chunk


def test_a_forwarded_payload_that_is_not_json_counts_no_text_and_breaks_nothing():
    meter = StreamMeter()
    pipe = _pipe(meter)
    bad = HEAD + b'"choices":[{"index":0,"delta":{"content":"lost"}"finish_reason":null}],"usage":null}'  # a comma missing
    assert pipe.feed(Event(b"", bad)) == b"data: " + bad.replace(b'"model":"gpt-4.1"', b'"model":"openai/gpt-4.1"') + b"\n\n"
    with pytest.raises(MalformedChunk):  # cut short after its choice: it does not end as a text delta does
        pipe.feed(Event(b"", HEAD + b'"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}'))
    pipe.feed(Event(b"", PAYLOADS[2]))
    assert meter.delivered_text() == "caf\u00e9 \\"
    assert meter.delivered_text() == "caf\u00e9 \\"  # decoded once


def test_the_usage_chunk_the_gateway_writes_takes_the_first_chunks_id_even_undecoded():
    meter = StreamMeter()
    pipe = _pipe(meter, include_usage=True)
    pipe.feed(Event(b"", PAYLOADS[0]))
    pipe.feed(Event(b"", PAYLOADS[9]))
    assert meter.pieces == ["end"]  # the finish chunk is decoded at once; the role chunk waits
    tail = pipe.ending(Usage(4, 1, estimated=True), "0.000001")
    usage_chunk = orjson.loads(SSEDecoder().feed(tail)[0].data)
    assert (usage_chunk["id"], usage_chunk["created"], usage_chunk["usage"]["cost"]) == ("chatcmpl-1", 1700000000, 0.000001)


def test_a_long_stream_keeps_a_bounded_size_undecoded():
    meter = StreamMeter()
    pipe = _pipe(meter)
    delta = PAYLOADS[1]
    count = SKIM_LIMIT // len(delta) + 1  # one past the limit
    for _ in range(count):
        assert pipe.feed(Event(b"", delta)).startswith(b"data: {")
    assert len(meter.pieces) == count  # decoded into the meter's text once the limit was passed
    pipe.feed(Event(b"", delta))
    assert len(meter.pieces) == count  # and keeping again
    assert len(meter.delivered_text()) == (count + 1) * len(orjson.loads(delta)["choices"][0]["delta"]["content"])
