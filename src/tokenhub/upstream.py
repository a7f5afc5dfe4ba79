"""An upstream as the request path sees it: a channel (its address, key, protocol and timeouts) and a
route (a channel and the upstream's id for one catalog model).

Plain values on the bottom layer: the directory builds them, the relay routes over them and the
adapters build requests with them, without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import aiohttp

from tokenhub.scrub import scrub


@dataclass(frozen=True)
class Timeouts:
    """How long to wait on a channel's upstream, in seconds."""

    connect: float
    first_byte: float  # from sending the request until the response headers
    idle: float  # the longest gap between two chunks of the body

    @cached_property
    def client(self) -> aiohttp.ClientTimeout:
        """For aiohttp: the connect timeout only (the first byte and idle timeouts are the relay's)."""
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect, sock_read=None)


DEFAULT_TIMEOUTS = Timeouts(connect=10.0, first_byte=300.0, idle=300.0)


@dataclass(frozen=True)
class Channel:
    id: int
    name: str
    provider: str
    protocol: str
    base_url: str
    api_key: str
    priority: int
    weight: int
    timeouts: Timeouts = DEFAULT_TIMEOUTS

    def redact(self, text: str) -> str:
        """Text bound for a client without this channel's key and address, nor anything key-shaped or internal."""
        return scrub(text, secrets=(self.api_key, *self.api_key.split(":"), self.base_url), hosts=(self.base_url,))


@dataclass(frozen=True)
class Route:
    channel: Channel
    upstream_id: str
