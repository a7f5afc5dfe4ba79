"""Talking to an upstream over HTTP: network failures become the gateway's errors here, and only here.

The relay, the media tasks, ``count_tokens`` and the channel Test all call upstreams through the one
aiohttp session of their process; whatever aiohttp or a deadline raises on the way is mapped by
``upstream_failure`` into the error tree (``errors.py``), like httpx's one mapping of its transport's
exceptions:

* before the upstream answered: ``UpstreamTimeout`` (it did not answer in time) or ``UpstreamError``
  ``upstream_unreachable``;
* in the middle of its answer: ``UpstreamTimeout`` (it stopped sending) or ``UpstreamError``
  ``upstream_reset`` (the connection broke).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from tokenhub.errors import GatewayError, UpstreamError, UpstreamTimeout
from tokenhub.providers.base import UpstreamRequest

NETWORK_FAILURES = (TimeoutError, aiohttp.ClientError)  # asyncio.TimeoutError is TimeoutError


def upstream_failure(exc: BaseException, *, answering: bool = False) -> GatewayError:
    """The gateway's error for a network failure talking to an upstream (one of ``NETWORK_FAILURES``);
    ``answering``: the upstream had begun its answer."""
    if isinstance(exc, TimeoutError):
        if answering:
            return UpstreamTimeout("the upstream provider stopped sending in the middle of the answer")
        return UpstreamTimeout("the upstream provider did not answer in time")
    if answering:
        return UpstreamError("the upstream connection broke in the middle of the answer", code="upstream_reset")
    return UpstreamError(f"could not reach the upstream provider ({type(exc).__name__})", code="upstream_unreachable")


@contextmanager
def mapped_failures(*, answering: bool = False) -> Iterator[None]:
    """Raise network failures inside the block as the gateway's errors."""
    try:
        yield
    except NETWORK_FAILURES as exc:
        raise upstream_failure(exc, answering=answering) from None


async def fetch(http: aiohttp.ClientSession, request: UpstreamRequest) -> tuple[int, bytes, str | None]:
    """One whole upstream exchange (POST with a body, GET without): status, body and ``Retry-After``."""
    method = "POST" if request.body else "GET"
    with mapped_failures():
        async with http.request(method, request.url, data=request.body or None, headers=request.headers) as resp:
            return resp.status, await resp.read(), resp.headers.get("Retry-After")
