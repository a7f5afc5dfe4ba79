"""Run an aiohttp app on 127.0.0.1:<ephemeral port> in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable

from aiohttp import web


class ServerThread:
    def __init__(self, app: web.Application, *, shutdown_timeout: float = 0.5) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, handle_signals=False)
        self.port = 0
        self._shutdown_timeout = shutdown_timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, shutdown_timeout=self._shutdown_timeout)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def start(self) -> "ServerThread":
        self._thread.start()
        assert self._ready.wait(30), "server did not start"
        if self._error is not None:
            raise self._error
        return self

    def run(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    async def _shutdown(self) -> None:
        """Stop serving, then let every connection finish closing and every leftover task end, so
        nothing is left for the garbage collector to find open (a ResourceWarning in a later test)."""
        await self.runner.cleanup()
        await asyncio.sleep(0)  # transports closed by the cleanup run their connection_lost callbacks
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        # A connection whose peer stopped reading cannot finish a graceful close (its write buffer never
        # drains): abort whatever is still open. ``_transports`` is the selector loop's own registry.
        for transport in list(getattr(asyncio.get_running_loop(), "_transports", {}).values()):
            if transport is not None:
                transport.abort()
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    def stop(self) -> None:
        if self.loop.is_closed():
            return  # stopped already
        if self._error is None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(60)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
