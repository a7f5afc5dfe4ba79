"""The response a stream is written to, in its own module so that it stays Python in a compiled wheel.

mypyc compiles every class of a module it compiles as a native class; one whose base is a third-party
Python class such as aiohttp's ``StreamResponse`` gets an instance layout CPython 3.11 cannot use
(its ``__dict__`` at the base's offset without the managed dict behind it: heap corruption, seen as
a crash in a later request). tests/test_compiled.py checks the compiled modules' classes for this.
"""

from __future__ import annotations

from aiohttp import web


class EventStream(web.StreamResponse):
    """A stream response whose headers leave with its first bytes (aiohttp's plain ``Response`` does this;
    a ``StreamResponse`` writes its headers on their own at ``prepare``, a socket write per stream more)."""

    _send_headers_immediately = False
