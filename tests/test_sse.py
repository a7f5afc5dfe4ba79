"""The byte-level SSE decoder: every framing real upstreams use, split at every byte."""

from __future__ import annotations

import pytest

from tokenhub.sse import Event, SSEDecoder

STREAM = (
    b": keep-alive\n\n"
    b"data: {\"a\":1}\n\n"
    b"event: message_start\ndata: {\"b\":2}\n\n"
    b"\n"
    b"data:{\"c\":3}\n\n"
    b"data: line1\ndata: line2\n\n"
    b"id: 7\nretry: 100\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    Event(b"", b'{"a":1}'),
    Event(b"message_start", b'{"b":2}'),
    Event(b"", b'{"c":3}'),
    Event(b"", b"line1\nline2"),
    Event(b"", b"[DONE]"),
]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_split_point_gives_the_same_events(newline: bytes):
    stream = STREAM.replace(b"\n", newline)
    for cut in range(len(stream) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) + decoder.close()
        assert events == EXPECTED, cut


def test_byte_by_byte_crlf():
    stream = STREAM.replace(b"\n", b"\r\n")
    decoder = SSEDecoder()
    events = [e for i in range(len(stream)) for e in decoder.feed(stream[i : i + 1])]
    assert events == EXPECTED


def test_unterminated_last_event_is_returned_on_close():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {\"x\":1}\n\ndata: {\"y\"") == [Event(b"", b'{"x":1}')]
    assert decoder.feed(b":2}") == []
    assert decoder.close() == [Event(b"", b'{"y":2}')]


def test_events_split_across_reads_and_in_one_read_decode_alike():
    stream = b'data: {"a":1}\n\nevent: ping\ndata: x\ndata: y\n\n: comment\n\ndata: [DONE]\n\n'
    whole = SSEDecoder().feed(stream)
    assert [(e.name, e.data) for e in whole] == [(b"", b'{"a":1}'), (b"ping", b"x\ny"), (b"", b"[DONE]")]
    for cut in range(1, len(stream)):
        decoder = SSEDecoder()
        parts = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert parts == whole, cut
