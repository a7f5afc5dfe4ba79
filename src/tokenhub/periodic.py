"""A background job that runs every few seconds and stops cleanly.

Stopping never cancels the job in the middle of a run (a cancelled database call can leave a
connection inside a transaction, holding SQLite's write lock): ``stop`` lets the current run
finish, then ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("tokenhub")


class Periodic:
    def __init__(self, name: str, interval: float, job: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval = interval
        self._job = job
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self._job()
            except Exception as exc:  # keep going: storage may come back
                log.warning("%s failed: %s", self.name, type(exc).__name__)
