"""Test a channel: send the smallest real request its protocol takes and time the answer.

Used by ``tokenhub channel test``, the console's Test button and ``POST /api/admin/channels/{channel}/test``. A chat channel gets a
one-token chat request for the first model it serves; media channels are not probed (a probe would
cost a generation) and say so.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from tokenhub.directory import Directory
from tokenhub.errors import Conflict, GatewayError
from tokenhub.providers.registry import CHAT_ADAPTERS
from tokenhub.providers.upstream_http import NETWORK_FAILURES, upstream_failure
from tokenhub.upstream import Channel

PROBE_MESSAGES = [{"role": "user", "content": "ping"}]


@dataclass
class ProbeResult:
    channel: str
    model: str | None
    ok: bool
    latency_ms: int | None
    detail: str


def first_served(directory: Directory, channel: Channel) -> tuple[str, str] | None:
    """(catalog id, upstream id) of the first chat model this channel serves."""
    for model in directory.catalog.models.values():
        for route in directory.routes(model.id):
            if route.channel.id == channel.id and model.kind == "chat":
                return model.id, route.upstream_id
    return None


async def probe(session: aiohttp.ClientSession, directory: Directory, channel: Channel) -> ProbeResult:
    """The probe's outcome; its detail never carries the channel's key or address (operators' screens show it)."""
    result = await _probe(session, directory, channel)
    result.detail = channel.redact(result.detail)
    return result


async def _probe(session: aiohttp.ClientSession, directory: Directory, channel: Channel) -> ProbeResult:
    adapter = CHAT_ADAPTERS.get(channel.protocol)
    if adapter is None:
        return ProbeResult(channel.name, None, True, None, f"not probed: {channel.protocol} generates media, a probe would cost a generation")
    served = first_served(directory, channel)
    if served is None:
        return ProbeResult(channel.name, None, False, None, "serves no chat model of the catalog")
    model_id, upstream_id = served
    payload = {"model": model_id, "messages": PROBE_MESSAGES, "max_tokens": 1}
    started = time.monotonic()
    try:
        upstream = adapter.build_request(payload, upstream_id, channel, stream=False, max_output=1)
        async with session.post(upstream.url, data=upstream.body, headers=upstream.headers) as resp:
            body = await resp.read()
            latency = int((time.monotonic() - started) * 1000)
            if resp.status != 200:
                err = adapter.error(resp.status, body, channel, resp.headers.get("Retry-After"))
                return ProbeResult(channel.name, model_id, False, latency, f"HTTP {resp.status}: {err.message}")
        completion = adapter.parse_response(body)
        choices = completion.body.get("choices") or [{}]
        text = str((choices[0].get("message") or {}).get("content") or "")[:60]
        return ProbeResult(channel.name, model_id, True, latency, f"answered {text!r}")
    except GatewayError as err:
        return ProbeResult(channel.name, model_id, False, int((time.monotonic() - started) * 1000), err.message)
    except NETWORK_FAILURES as exc:
        return ProbeResult(channel.name, model_id, False, None, upstream_failure(exc).message)


async def probe_all(directory: Directory, channels: list[Channel], *, timeout: float = 30.0) -> list[ProbeResult]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        return list(await asyncio.gather(*(probe(session, directory, c) for c in channels)))


async def probe_channel(directory: Directory, channel_id: int, *, timeout: float = 20.0) -> ProbeResult:
    """The Test button: probe one channel as the gateway sees it now (it must be enabled)."""
    channel = next((c for c in directory.channels() if c.id == channel_id), None)
    if channel is None:
        raise Conflict("the channel is disabled: enable it to test it", code="channel_disabled")
    return (await probe_all(directory, [channel], timeout=timeout))[0]
