"""Server-sent events, at the byte level.

The relay forwards OpenAI-protocol events without re-serialising them, so it needs the event
boundaries and the ``data`` payload as bytes, not decoded text: this decoder does exactly that and
no more (``event:`` names are kept for protocols that use them). It follows the WHATWG rules that
matter here: CR, LF and CRLF line endings (also split across reads), comment lines (``:``),
several ``data:`` lines joined by LF, one optional space after the colon.
"""

from __future__ import annotations

from typing import Final

# A byte searched for as its int: ``b"\n" in block`` first tries the needle as an int, making and dropping a
# TypeError (~2 k instructions, once for each event of a stream), where ``_LF in block`` is one memchr.
_LF: Final = 0x0A  # b"\n"
_CR: Final = 0x0D  # b"\r"


class Event:
    """One event: its ``event:`` name (b"" when it has none) and its data.

    A plain class, not a named tuple: compiled, making one is a native call (a named tuple's, through
    ``tuple.__new__``, cost ~1 k instructions, once for each event of a stream)."""

    __slots__ = ("name", "data")

    def __init__(self, name: bytes, data: bytes) -> None:
        self.name = name
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self.name == other.name and self.data == other.data

    def __repr__(self) -> str:
        return f"Event(name={self.name!r}, data={self.data!r})"


class SSEDecoder:
    __slots__ = ("_buf", "_pending_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[Event]:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if _CR in chunk:
            if chunk.endswith(b"\r"):  # may be the first half of a CRLF
                chunk = chunk[:-1]
                self._pending_cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk if self._buf else chunk
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()  # after the last blank line: the start of an event still arriving
        events: list[Event] = []
        for block in blocks:
            if block.startswith(b"data: ") and _LF not in block:  # the common case: one data line
                events.append(Event(b"", block[6:]))
            else:
                event = _parse_block(block)
                if event is not None:
                    events.append(event)
        return events

    def close(self) -> list[Event]:
        """Whatever an unterminated final block held (a stream cut without its blank line)."""
        block, self._buf = self._buf, b""
        event = _parse_block(block.strip(b"\n")) if block.strip() else None
        return [event] if event is not None else []


def _parse_block(block: bytes) -> Event | None:
    if block.startswith(b"data: ") and _LF not in block:  # the common case: one data line
        return Event(b"", block[6:])
    name = b""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value
    if not data:
        return None
    return Event(name, b"\n".join(data))


def frame(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


DONE: Final = b"data: [DONE]\n\n"
