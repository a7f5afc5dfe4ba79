"""One charge's life: hold -> the call -> settle, exactly once. Chat, count_tokens, images and video use it.

    async with Bill(ledger, hold) as bill:      # the hold is taken here (it may refuse: nothing to settle)
        ...the upstream call...
        bill.status, bill.cost = "ok", cost     # filled in as the call goes
    # on exit, whatever the exit (an answer, an error, the client gone, a cancellation), the
    # settlement is queued once, from what the bill says then: a failure costs 0 unless a cost was set

An ``early`` bill lets the call go upstream while its hold commits, when the ledger expects the
hold admitted (``LedgerWriter.covers``); the caller awaits ``confirmed()`` (or ``refusal()``) before
anything reaches the client, and marks the bill ``calling`` while it waits for the upstream's answer:
a hold refused meanwhile cancels it there (a whole answer is not waited for, nor paid to the upstream,
for nothing). A bill that ends before its hold has committed settles once it has (nothing, if it was
refused).

A call whose settlement belongs to someone else from some point on (a video task, settled by the
poller when the task ends) calls ``hand_over()``; the bill then settles nothing on exit. ``durable``
bills wait for the settlement's commit when the call failed (a video submit that failed answers only
once its hold is released).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Callable

from tokenhub.billing.ledger import LedgerWriter
from tokenhub.billing.ledger_plan import Hold, Settlement
from tokenhub.tokens import Usage


@dataclass(eq=False)
class Bill:
    """The hold of one request and how the request ended, turned into its settlement on exit."""

    ledger: LedgerWriter
    hold: Hold
    prices: str | None = None  # the model's prices as JSON, recorded with the request
    on_settled: Callable[[Settlement], None] | None = None  # e.g. metrics, a rate-limit ticket
    durable: bool = False  # on failure, wait until the settlement is committed before the error leaves
    early: bool = False  # the call may go upstream while the hold commits (when the ledger expects it admitted)
    on_held: Callable[[], None] | None = None  # once the hold is committed (e.g. metrics)
    # The call is waiting for the upstream's answer: an early hold refused meanwhile cancels the task
    # that entered the bill (its ``CancelledError`` then stands for ``refused``).
    calling: bool = False
    status: str = "error"  # ok | client_closed | upstream_error | truncated | interrupted | error
    cost: int = 0
    usage: Usage = field(default_factory=Usage)
    http_status: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    ttfb: float | None = None  # time.monotonic() when the first byte went to the client
    started: float = 0.0
    channel_id: int | None = None  # the route that answered last (failover moves it); the hold's by default
    upstream_model: str | None = None
    model: str | None = None  # the model that answered, when a fallback model did (the hold's otherwise)
    _handed_over: bool = False

    async def __aenter__(self) -> Bill:
        self.started = time.monotonic()
        self.channel_id = self.hold.channel_id
        self.upstream_model = self.hold.upstream_model
        if self.early and self.ledger.covers(self.hold):
            self.ledger.queue_hold(self.hold)
            self._future.add_done_callback(partial(self._early_hold_done, asyncio.current_task()))
        else:
            await self.ledger.hold(self.hold)
            if self.on_held is not None:
                self.on_held()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._handed_over:
            return
        settlement = self.settlement()
        if not self._future.done():  # an early hold not committed yet: settle once it is
            self._future.add_done_callback(lambda f: self._settle(settlement) if _held(f) else None)
            return
        if not _held(self._future):  # refused: nothing was held
            return
        self._settle(settlement)
        if self.durable and exc is not None:
            await self.ledger.flush()

    def _early_hold_done(self, task: asyncio.Task[object] | None, future: asyncio.Future[None]) -> None:
        if _held(future):
            if self.on_held is not None:
                self.on_held()
        elif self.calling and task is not None:  # refused while the upstream is answering: stop waiting for it
            task.cancel()

    @property
    def refused(self) -> BaseException | None:
        """Why the hold was refused, once it was (an early hold may be); None while it is pending or held."""
        future = self._future
        return future.exception() if future.done() and not future.cancelled() else None

    async def refusal(self) -> BaseException | None:
        """Once the hold has committed: None, or why it was refused (an early hold may be)."""
        future = self._future
        if not future.done():
            await asyncio.wait((future,))  # a caller cancelled meanwhile leaves the hold to commit, and to settle on exit
        return future.exception()

    async def confirmed(self) -> None:
        """Wait for the hold's commit; raise its refusal."""
        refused = await self.refusal()
        if refused is not None:
            raise refused

    @property
    def _future(self) -> asyncio.Future[None]:
        assert self.hold.future is not None, "the bill's hold was never queued"
        return self.hold.future

    def _settle(self, settlement: Settlement) -> None:
        self.ledger.settle(settlement)
        if self.on_settled is not None:
            self.on_settled(settlement)

    def hand_over(self) -> None:
        """From now on the hold is someone else's to settle (exactly once: only a hold still open resolves)."""
        self._handed_over = True

    def settlement(self) -> Settlement:
        hold = self.hold
        return Settlement(
            request_id=hold.request_id,
            user_id=hold.user_id,
            key_id=hold.key_id,
            hold=hold.amount,
            cost=self.cost,
            status=self.status,
            usage=self.usage,
            http_status=self.http_status,
            finish_reason=self.finish_reason,
            latency_ms=int((time.monotonic() - self.started) * 1000),
            ttfb_ms=int((self.ttfb - self.started) * 1000) if self.ttfb else None,
            error=self.error,
            prices=self.prices,
            channel_id=self.channel_id,
            upstream_model=self.upstream_model,
            model=self.model,
            budgets=hold.budgets,
            held_on=hold.held_on,
        )


def _held(future: asyncio.Future[None]) -> bool:
    return not future.cancelled() and future.exception() is None
