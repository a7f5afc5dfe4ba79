"""Which channels serve a request, in which order, and what a failure means for the next try.

Order: the highest priority first; within a priority a weighted random order (a channel of weight
3 comes first three times as often as one of weight 1). Channels whose breaker is open or which
are cooling down are skipped — unless every channel is, then the first is tried anyway (a gateway
never ejects all its channels).
"""

from __future__ import annotations

import random
from collections.abc import Container
from itertools import groupby
from typing import Final

from tokenhub.catalog.model import Model
from tokenhub.digits import whole_number
from tokenhub.errors import GatewayError, InvalidRequest, RateLimited, ServiceUnavailable, UpstreamError, UpstreamTimeout
from tokenhub.providers.registry import CHAT_ADAPTERS
from tokenhub.relay.extensions import ProviderPreferences
from tokenhub.relay.health import ChannelHealth
from tokenhub.upstream import Route

# Upstream failures after which another channel may answer (before any byte reached the client).
RETRYABLE: Final = (UpstreamError, ServiceUnavailable, UpstreamTimeout, RateLimited)
MISCONFIGURED: Final = ("upstream_auth_failed",)


def candidates(routes: list[Route], model: Model, protocols: Container[str] = CHAT_ADAPTERS) -> list[Route]:
    served = [r for r in routes if r.channel.protocol in protocols]
    if not served:
        if routes:
            raise ServiceUnavailable(
                f"'{model.id}' is served by a {routes[0].channel.provider} channel, and this gateway version does not relay "
                f"that provider's protocol yet",
                code="protocol_not_served",
            )
        raise ServiceUnavailable(
            f"no channel serves '{model.id}' right now; the operator must add one (tokenhub channel add ...)",
            code="no_channel",
        )
    ordered: list[Route] = []
    for _, group in groupby(served, key=lambda r: r.channel.priority):  # routes come sorted by priority
        members = list(group)
        members.sort(key=lambda r: random.random() ** (1.0 / max(r.channel.weight, 1)), reverse=True)
        ordered.extend(members)
    return ordered


def prefer(routes: list[Route], prefs: ProviderPreferences | None, health: ChannelHealth) -> list[Route]:
    """``routes`` as a client's ``provider`` preferences (OpenRouter's) ask: ``only`` and ``ignore`` filter,
    ``order`` puts the named first in its order, ``allow_fallbacks: false`` keeps only those (only the
    first route when no order is given). A name matches a channel's vendor or the channel's own name.
    ``sort``: ``latency`` puts the channels with the shortest observed time to first byte first,
    ``throughput`` the most output tokens per second (``health.speed``; channels not yet observed come
    after, in the operator's order); ``price`` keeps the order, since every channel of a model bills the
    same catalog price."""
    if prefs is None:
        return routes
    if prefs.sort in ("latency", "throughput"):
        routes = sorted(routes, key=lambda r: _speed_rank(health, r, prefs.sort))  # stable: ties keep the operator's order

    def names(route: Route) -> tuple[str, str]:
        return route.channel.provider.lower(), route.channel.name.lower()

    chosen = [r for r in routes if (not prefs.only or set(names(r)) & set(prefs.only)) and not set(names(r)) & set(prefs.ignore)]
    if prefs.order:
        rank = {name: i for i, name in reversed(list(enumerate(prefs.order)))}
        listed = sorted((r for r in chosen if set(names(r)) & rank.keys()), key=lambda r: min(rank.get(n, len(rank)) for n in names(r)))
        chosen = listed if not prefs.allow_fallbacks else listed + [r for r in chosen if r not in listed]
    elif not prefs.allow_fallbacks:
        chosen = chosen[:1]
    return chosen


def _speed_rank(health: ChannelHealth, route: Route, sort: str | None) -> tuple[int, float]:
    latency, throughput = health.speed(route.channel.id)
    if sort == "latency":
        return (0, latency) if latency is not None else (1, 0.0)
    return (0, -throughput) if throughput is not None else (1, 0.0)


def pick_route(routes: list[Route], model: Model, protocols: Container[str] = CHAT_ADAPTERS) -> Route:
    return candidates(routes, model, protocols)[0]


def admitted(routes: list[Route], health: ChannelHealth) -> list[Route]:
    """The routes whose channels may take a request now (at least one)."""
    chosen = [r for r in routes if health.admit(r.channel.id)]
    return chosen or routes[:1]


def judge(health: ChannelHealth, route: Route, err: GatewayError) -> bool:
    """Record an attempt's failure against its channel; True when another channel should try."""
    channel = route.channel.id
    if isinstance(err, InvalidRequest) or not isinstance(err, RETRYABLE):
        health.release(channel)  # the client's own request: not the channel's fault, not retried
        return False
    if err.code in MISCONFIGURED:
        health.misconfigured(channel, err.message)
        return False  # the operator must fix the channel; another channel would not change the answer's cause
    if isinstance(err, RateLimited):
        retry_after = err.headers.get("Retry-After")
        seconds = whole_number(retry_after, 9)
        health.rate_limited(channel, float(seconds) if seconds is not None else None)
        return True
    health.failed(channel, err.message)
    return True
