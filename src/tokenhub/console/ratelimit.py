"""Login attempt limits, in process memory (see docs/console.md, "Signing in").

Three counts of failed passwords, each over the last 15 minutes:

- per (account, address): 5 failures refuse that address for that account (429 until the oldest expires);
- per address: 20 failures refuse that address for every account;
- per account, from every address: past 5, each further attempt on the account is answered only after a
  growing delay (0.5 s doubling to 8 s), but never refused, so nobody can lock the owner out by failing
  from addresses of their own. The right password from an address that is not refused always signs in.

Sign-ups are counted per address too: at most 5 new accounts an hour from one address (``SignupLimiter``),
whether they succeed or fail, so a script cannot farm accounts (and sign-up bonuses) from one machine.

Several gateway processes each keep their own counts (so the effective limits are per process).
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

    def count(self, key: str) -> int:
        times = self._recent(key)
        return 0 if times is None else len(times)

    def fail(self, key: str) -> None:
        if len(self._failures) >= self._max_keys:
            for stale in list(self._failures):
                self._recent(stale)
        self._failures.setdefault(key, deque()).append(self._clock())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginLimiter:
    def __init__(
        self,
        per_pair: int = 5,
        per_address: int = 20,
        account_free: int = 5,
        window: float = 15 * 60,
        first_delay: float = 0.5,
        max_delay: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pairs = FailureWindow(per_pair, window, clock)
        self.addresses = FailureWindow(per_address, window, clock)
        self.accounts = FailureWindow(account_free, window, clock)
        self.first_delay = first_delay
        self.max_delay = max_delay

    @staticmethod
    def _pair(account: str, address: str) -> str:
        return f"{account.lower()}\n{address}"

    def retry_after(self, account: str, address: str) -> int:
        """0 when this address may try this account; otherwise seconds until it may."""
        return max(self.pairs.retry_after(self._pair(account, address)), self.addresses.retry_after(address))

    def delay(self, account: str) -> float:
        """Seconds to wait before checking a password for this account: 0, then growing with its recent failures."""
        recent = self.accounts.count(account.lower())
        if recent < self.accounts.limit:
            return 0.0
        return min(self.max_delay, self.first_delay * 2 ** (recent - self.accounts.limit))

    def fail(self, account: str, address: str) -> None:
        self.pairs.fail(self._pair(account, address))
        self.addresses.fail(address)
        self.accounts.fail(account.lower())

    def succeed(self, account: str, address: str) -> None:
        """The pair starts afresh; the account's count stays (an attacker elsewhere is still trying)."""
        self.pairs.clear(self._pair(account, address))


class SignupLimiter(FailureWindow):
    """Sign-up attempts per client address: ``limit`` an hour, counted whether they succeed or not."""

    def __init__(self, limit: int = 5, window: float = 3600, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limit, window, clock)
