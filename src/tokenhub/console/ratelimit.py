"""Login attempt limits, in process memory: failures per account and per client address.

Several gateway processes each keep their own counts (so the effective limit is per process);
a shared limiter comes with Redis (issue 6).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable


class FailureWindow:
    """At most ``limit`` failures per key within ``window`` seconds."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = self._clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> int:
        """0 when allowed; otherwise whole seconds until the oldest counted failure expires."""
        times = self._recent(key)
        if times is None or len(times) < self.limit:
            return 0
        return max(1, int(times[0] + self.window - self._clock()) + 1)

    def fail(self, key: str) -> None:
        if len(self._failures) >= self._max_keys:
            for stale in list(self._failures):
                self._recent(stale)
        self._failures.setdefault(key, deque()).append(self._clock())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginLimiter:
    def __init__(self, per_account: int = 5, per_address: int = 20, window: float = 15 * 60, clock: Callable[[], float] = time.monotonic):
        self.accounts = FailureWindow(per_account, window, clock)
        self.addresses = FailureWindow(per_address, window, clock)

    def retry_after(self, account: str, address: str) -> int:
        return max(self.accounts.retry_after(account.lower()), self.addresses.retry_after(address))

    def fail(self, account: str, address: str) -> None:
        self.accounts.fail(account.lower())
        self.addresses.fail(address)

    def succeed(self, account: str) -> None:
        self.accounts.clear(account.lower())
