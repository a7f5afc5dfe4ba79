"""The request path's one call into the rate limits: admit a caller, or refuse with 429 / 503."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from aiohttp import web

from tokenhub.directory import KeyInfo
from tokenhub.limits.rates import RateLimiter, Ticket
from tokenhub.request_keys import RATE_HEADERS, REQUEST_ID


async def admit(rates: RateLimiter, key: KeyInfo, request: web.Request) -> Ticket | None:
    """A ticket to release when the request ends, or None when neither the key nor its account has rate limits."""
    if not key.rate_scopes:
        return None
    ticket = await rates.admit(list(key.rate_scopes), request[REQUEST_ID])
    request[RATE_HEADERS] = ticket.headers
    return ticket


@asynccontextmanager
async def limited(rates: RateLimiter, key: KeyInfo, request: web.Request) -> AsyncIterator[None]:
    """For requests without tokens (images, video submissions): admitted for the block's duration."""
    ticket = await admit(rates, key, request)
    try:
        yield
    finally:
        if ticket is not None:
            ticket.release(0)
