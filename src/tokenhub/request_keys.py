"""What a request carries from one layer to the next: the keys of the aiohttp request's own mapping.

They live on the bottom layer so that the API (which sets them), the relay and the limits (which
read or add to them) and the logs all name them without importing each other.
"""

from __future__ import annotations

from aiohttp import web

REQUEST_ID = web.RequestKey("request_id", str)  # gen-…: returned in X-Request-Id, stored on the request row
RATE_HEADERS = web.RequestKey("rate_headers", dict)  # x-ratelimit-* for the caller's limits, if any
