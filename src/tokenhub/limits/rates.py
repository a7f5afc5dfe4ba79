"""Requests per minute, tokens per minute and requests in flight — the counters, in process memory.

Each scope (a key ``k:<id>``, an account ``u:<id>``) keeps sliding 60-second logs: admission checks
every scope first and records in all of them only if all agree, so a refused request uses nothing.
Requests count when admitted; tokens count when the request ends and its usage is known (so a burst
of concurrent requests can overshoot a tokens-per-minute limit by what they are about to use, as
with every provider's own limits); a request in flight holds one concurrency slot until it ends.

``RedisRates`` (redis_rates.py) keeps the same counters in Redis for several processes.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from tokenhub.errors import LimitReached
from tokenhub.limits.policy import Limits

WINDOW = 60.0  # seconds


@dataclass(frozen=True)
class Scope:
    ident: str  # "k:12" (a key) or "u:3" (an account)
    label: str  # "key" or "account", for messages
    limits: Limits


@dataclass
class Standing:
    """What is left in one scope after admission, for the x-ratelimit-* headers."""

    rpm: int | None = None
    requests_left: int = 0
    requests_reset: float = 0.0
    tpm: int | None = None
    tokens_left: int = 0
    tokens_reset: float = 0.0
    concurrency: int | None = None
    concurrent_left: int = 0


@dataclass
class Refusal:
    scope: Scope
    limit: str  # rpm | tpm | concurrency
    retry_after: float
    standing: Standing


class Ticket(Protocol):
    """An admitted request: ``release(tokens)`` when it ends (frees its slot, counts its tokens)."""

    headers: dict[str, str]

    def release(self, tokens: int) -> None: ...


class RateLimiter(Protocol):
    async def admit(self, scopes: list[Scope], request_id: str) -> Ticket: ...

    async def close(self) -> None: ...


def headers_for(standings: list[Standing]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the tightest scope of each kind."""
    out: dict[str, str] = {}
    with_rpm = [s for s in standings if s.rpm is not None]
    if with_rpm:
        s = min(with_rpm, key=lambda s: s.requests_left)
        out["x-ratelimit-limit-requests"] = str(s.rpm)
        out["x-ratelimit-remaining-requests"] = str(max(s.requests_left, 0))
        out["x-ratelimit-reset-requests"] = duration(s.requests_reset)
    with_tpm = [s for s in standings if s.tpm is not None]
    if with_tpm:
        s = min(with_tpm, key=lambda s: s.tokens_left)
        out["x-ratelimit-limit-tokens"] = str(s.tpm)
        out["x-ratelimit-remaining-tokens"] = str(max(s.tokens_left, 0))
        out["x-ratelimit-reset-tokens"] = duration(s.tokens_reset)
    with_conc = [s for s in standings if s.concurrency is not None]
    if with_conc:
        s = min(with_conc, key=lambda s: s.concurrent_left)
        out["x-ratelimit-limit-concurrency"] = str(s.concurrency)
        out["x-ratelimit-remaining-concurrency"] = str(max(s.concurrent_left, 0))
    return out


def duration(seconds: float) -> str:
    """``"0.25s"``, ``"12s"``: how long until the window frees up (OpenAI's header style)."""
    seconds = max(seconds, 0.0)
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def refuse(refusal: Refusal, standings: list[Standing]) -> LimitReached:
    what = {"rpm": "requests per minute", "tpm": "tokens per minute", "concurrency": "requests in flight"}[refusal.limit]
    limit = getattr(refusal.scope.limits, refusal.limit)
    retry = max(1, math.ceil(refusal.retry_after))
    headers = headers_for(standings)
    headers["Retry-After"] = str(retry)
    return LimitReached(
        f"Rate limit reached: this {refusal.scope.label} allows {limit} {what}. Try again in {retry} s.",
        scope=refusal.scope.label,
        limit=refusal.limit,
        code="rate_limit_exceeded",
        headers=headers,
    )


class _Log:
    """A sliding window of (time, amount) with a running total."""

    __slots__ = ("events", "total")

    def __init__(self) -> None:
        self.events: deque[tuple[float, int]] = deque()
        self.total = 0

    def prune(self, now: float) -> None:
        events = self.events
        while events and events[0][0] <= now - WINDOW:
            self.total -= events.popleft()[1]

    def add(self, now: float, amount: int) -> None:
        self.events.append((now, amount))
        self.total += amount

    def free_in(self, now: float, limit: int) -> float:
        """Seconds until the total drops below ``limit``."""
        total = self.total
        for at, amount in self.events:
            total -= amount
            if total < limit:
                return at + WINDOW - now
        return 0.0


@dataclass
class _State:
    requests: _Log = field(default_factory=_Log)
    tokens: _Log = field(default_factory=_Log)
    in_flight: int = 0


class MemoryRates:
    """The counters of one process (used when TOKENHUB_REDIS_URL is not set)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._states: dict[str, _State] = {}
        self._clock = clock

    async def admit(self, scopes: list[Scope], request_id: str) -> "_MemoryTicket":
        now = self._clock()
        standings: list[Standing] = []
        refusal: Refusal | None = None
        states = [self._states.setdefault(scope.ident, _State()) for scope in scopes]
        for scope, state in zip(scopes, states):
            limits = scope.limits
            standing = Standing(rpm=limits.rpm, tpm=limits.tpm, concurrency=limits.concurrency)
            if limits.rpm is not None:
                state.requests.prune(now)
                standing.requests_left = limits.rpm - state.requests.total - 1  # type: ignore[operator]
                standing.requests_reset = state.requests.events[0][0] + WINDOW - now if state.requests.events else WINDOW
                if state.requests.total >= limits.rpm and refusal is None:  # type: ignore[operator]
                    refusal = Refusal(scope, "rpm", state.requests.free_in(now, limits.rpm), standing)  # type: ignore[arg-type]
            if limits.tpm is not None:
                state.tokens.prune(now)
                standing.tokens_left = limits.tpm - state.tokens.total
                standing.tokens_reset = state.tokens.free_in(now, 1) if state.tokens.events else 0.0
                if state.tokens.total >= limits.tpm and refusal is None:
                    refusal = Refusal(scope, "tpm", state.tokens.free_in(now, limits.tpm), standing)
            if limits.concurrency is not None:
                standing.concurrent_left = limits.concurrency - state.in_flight - 1
                if state.in_flight >= limits.concurrency and refusal is None:
                    refusal = Refusal(scope, "concurrency", 1.0, standing)
            standings.append(standing)
        if refusal is not None:
            for standing in standings:  # nothing was taken
                standing.requests_left += 1
                standing.concurrent_left += 1
            raise refuse(refusal, standings)
        for scope, state in zip(scopes, states):
            if scope.limits.rpm is not None:
                state.requests.add(now, 1)
            state.in_flight += 1
        return _MemoryTicket(self, scopes, states, headers_for(standings))

    def _release(self, scopes: list[Scope], states: list[_State], tokens: int) -> None:
        now = self._clock()
        for scope, state in zip(scopes, states):
            state.in_flight -= 1
            if tokens > 0 and scope.limits.tpm is not None:
                state.tokens.prune(now)
                state.tokens.add(now, tokens)
            if state.in_flight == 0 and not state.requests.events and not state.tokens.events:
                self._states.pop(scope.ident, None)  # idle: forget it

    async def close(self) -> None:
        pass


class _MemoryTicket:
    __slots__ = ("_owner", "_scopes", "_states", "headers", "_released")

    def __init__(self, owner: MemoryRates, scopes: list[Scope], states: list[_State], headers: dict[str, str]) -> None:
        self._owner, self._scopes, self._states, self.headers = owner, scopes, states, headers
        self._released = False

    def release(self, tokens: int) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self._scopes, self._states, tokens)
