"""Task status callbacks POSTed to ``callback_url``, in status order, with retries."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tokenhub.simulator.ark.tasks import STATE_KEY, ArkTask, CallbackAttempt, FakeArkState


def schedule_callback(state: FakeArkState, task: ArkTask) -> None:
    if not (task.scenario.callback and task.callback_url):
        return
    previous = task.callback_chain
    delivery = asyncio.get_running_loop().create_task(deliver_callback(state, task.id, task.callback_url, task.body(), previous))
    task.callback_chain = delivery
    state.pending_callbacks.add(delivery)
    delivery.add_done_callback(state.pending_callbacks.discard)


async def deliver_callback(
    state: FakeArkState, task_id: str, url: str, body: dict[str, Any], previous: asyncio.Task[None] | None
) -> None:
    if previous is not None:  # keep one task's callbacks in status order
        await asyncio.gather(previous, return_exceptions=True)
    if state.session is None or state.session.closed:
        state.session = aiohttp.ClientSession()
    attempts = 4 if body["status"] in ("succeeded", "failed") else 1
    payload = orjson.dumps(body)
    for attempt in range(1, attempts + 1):
        http_status: int | None = None
        error: str | None = None
        try:
            async with state.session.post(
                url,
                data=payload,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=state.callback_timeout),
            ) as resp:
                http_status = resp.status
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        state.callbacks.append(CallbackAttempt(task_id, body["status"], url, attempt, http_status, error, body))
        if http_status is not None and 200 <= http_status < 300:
            return
        if attempt < attempts:
            await asyncio.sleep(state.callback_retry_delay)


async def close_callbacks(app: web.Application) -> None:
    state = app[STATE_KEY]
    for delivery in list(state.pending_callbacks):
        delivery.cancel()
    if state.pending_callbacks:
        await asyncio.gather(*state.pending_callbacks, return_exceptions=True)
    if state.session is not None:
        await state.session.close()
        state.session = None
