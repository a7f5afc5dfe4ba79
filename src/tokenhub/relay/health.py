"""Channel health: circuit breakers and cool-downs, per gateway process.

A channel is *closed* (serving) until ``FAILURE_THRESHOLD`` consecutive upstream failures open it.
An open channel rests for a cool-down (``BASE_COOL_DOWN``, doubling with every re-opening up to
``MAX_COOL_DOWN``), then *half-opens*: exactly one request may probe it; its success closes the
breaker, its failure opens it again. A 429 with Retry-After rests the channel for that long (capped)
without counting as a breaker failure. An upstream that refuses the gateway's credentials marks the
channel misconfigured: it rests for ``MISCONFIGURED_REST`` and the operator sees why.

Only the upstream's faults count: a client's bad request or an insufficient balance never reaches
here. State is in memory; processes learn about a failing channel each on their own (shared state
through Redis comes with the multi-process work).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

FAILURE_THRESHOLD = 5
BASE_COOL_DOWN = 10.0
MAX_COOL_DOWN = 300.0
MAX_RETRY_AFTER = 60.0
MISCONFIGURED_REST = 60.0
SPEED_WEIGHT = 0.2  # the weight of the newest answer in the speed averages


@dataclass
class Breaker:
    state: str = "closed"  # closed | open | half_open
    consecutive_failures: int = 0
    openings: int = 0
    resting_until: float = 0.0  # open / cooling down until this monotonic time
    probe_in_flight: bool = False
    last_error: str | None = None
    misconfigured: bool = False
    recent: list[tuple[float, bool]] = field(default_factory=list)  # (when, ok) of the last outcomes
    latency: float | None = None  # seconds to the first byte, a moving average of the channel's answers
    throughput: float | None = None  # output tokens per second after the first byte, a moving average


class ChannelHealth:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._breakers: dict[int, Breaker] = {}

    def _get(self, channel_id: int) -> Breaker:
        breaker = self._breakers.get(channel_id)
        if breaker is None:
            breaker = self._breakers[channel_id] = Breaker()
        return breaker

    def admit(self, channel_id: int) -> bool:
        """May a request use this channel now? (Takes the probe slot of a half-open channel.)"""
        breaker = self._breakers.get(channel_id)
        if breaker is None or (breaker.state == "closed" and breaker.resting_until <= self._clock()):
            return True
        if breaker.resting_until > self._clock():
            return False
        if breaker.probe_in_flight:
            return False
        breaker.state = "half_open"
        breaker.probe_in_flight = True
        return True

    def succeeded(self, channel_id: int) -> None:
        breaker = self._breakers.get(channel_id)
        if breaker is None:
            return
        breaker.state = "closed"
        breaker.consecutive_failures = 0
        breaker.probe_in_flight = False
        breaker.misconfigured = False
        self._note(breaker, True)

    def failed(self, channel_id: int, reason: str) -> None:
        breaker = self._get(channel_id)
        breaker.last_error = reason
        breaker.consecutive_failures += 1
        self._note(breaker, False)
        if breaker.state == "half_open" or breaker.consecutive_failures >= FAILURE_THRESHOLD:
            self._open(breaker)

    def rate_limited(self, channel_id: int, retry_after: float | None) -> None:
        breaker = self._get(channel_id)
        breaker.last_error = "rate limited by the upstream"
        rest = min(retry_after if retry_after and retry_after > 0 else BASE_COOL_DOWN, MAX_RETRY_AFTER)
        breaker.resting_until = max(breaker.resting_until, self._clock() + rest)
        breaker.probe_in_flight = False
        self._note(breaker, False)

    def misconfigured(self, channel_id: int, reason: str) -> None:
        breaker = self._get(channel_id)
        breaker.misconfigured = True
        breaker.last_error = reason
        breaker.state = "open"
        breaker.probe_in_flight = False
        breaker.resting_until = self._clock() + MISCONFIGURED_REST
        self._note(breaker, False)

    def release(self, channel_id: int) -> None:
        """The request that took a probe slot ended without a verdict (e.g. the client left)."""
        breaker = self._breakers.get(channel_id)
        if breaker is not None:
            breaker.probe_in_flight = False

    def _open(self, breaker: Breaker) -> None:
        breaker.state = "open"
        breaker.openings += 1
        breaker.probe_in_flight = False
        breaker.resting_until = self._clock() + min(BASE_COOL_DOWN * 2 ** (breaker.openings - 1), MAX_COOL_DOWN)

    def _note(self, breaker: Breaker, ok: bool) -> None:
        now = self._clock()
        breaker.recent.append((now, ok))
        if len(breaker.recent) > 200:
            del breaker.recent[:100]

    def observe(self, channel_id: int, first_byte: float, tokens: int, total: float) -> None:
        """An answer's speed: ``first_byte`` and ``total`` seconds from the request, ``tokens`` generated
        (moving averages, for OpenRouter's ``provider.sort`` latency | throughput)."""
        breaker = self._get(channel_id)
        breaker.latency = first_byte if breaker.latency is None else breaker.latency + SPEED_WEIGHT * (first_byte - breaker.latency)
        generating = total - first_byte
        if tokens > 0 and generating > 0:
            rate = tokens / generating
            breaker.throughput = rate if breaker.throughput is None else breaker.throughput + SPEED_WEIGHT * (rate - breaker.throughput)

    def speed(self, channel_id: int) -> tuple[float | None, float | None]:
        """(latency s, throughput tokens/s) as observed here; None where nothing was observed yet."""
        breaker = self._breakers.get(channel_id)
        return (breaker.latency, breaker.throughput) if breaker is not None else (None, None)

    def snapshot(self, channel_id: int) -> dict[str, Any]:
        """For operators: state, why, and the recent error rate."""
        breaker = self._breakers.get(channel_id)
        if breaker is None:
            return {"state": "closed", "consecutive_failures": 0, "last_error": None, "recent_requests": 0, "recent_errors": 0}
        now = self._clock()
        state = breaker.state
        if state == "open" and breaker.resting_until <= now:
            state = "half_open"  # the next request will probe it
        if state == "closed" and breaker.resting_until > now:
            state = "cooling_down"
        recent = [ok for when, ok in breaker.recent if when > now - 3600]
        return {
            "state": "misconfigured" if breaker.misconfigured and state != "closed" else state,
            "consecutive_failures": breaker.consecutive_failures,
            "resting_for": round(max(breaker.resting_until - now, 0.0), 1),
            "last_error": breaker.last_error,
            "recent_requests": len(recent),
            "recent_errors": sum(1 for ok in recent if not ok),
        }
