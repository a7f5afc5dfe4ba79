"""The rate counters in Redis, shared by every gateway process (TOKENHUB_REDIS_URL).

One Lua script admits a request against every scope at once, atomically, using Redis's own clock
(so the processes' clocks do not matter). Per scope there are three sorted sets, under the deployment's namespace
(``th:<deployment id>``, so deployments sharing a Redis never mix):

* ``th:rl:<scope>:r`` — admitted request ids, scored by time (requests per minute);
* ``th:rl:<scope>:t`` — ``<request id>:<tokens>`` of ended requests, scored by time (tokens per minute);
* ``th:rl:<scope>:c`` — request ids in flight, scored by when their lease runs out (concurrency).
  A process killed mid-request cannot release its slots; the lease frees them after ``LEASE``.

If Redis cannot be reached, requests that have rate limits fail closed (503): never free service.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tokenhub.errors import ServiceUnavailable
from tokenhub.limits.rates import Refusal, Scope, Standing, headers_for, refuse

log = logging.getLogger("tokenhub.limits")

LEASE_MS = 15 * 60 * 1000  # the longest a request may hold a concurrency slot

# ARGV: request id, lease ms, then per scope: rpm, tpm, concurrency (0 = none).
# Returns {1, <per scope: requests_left, requests_reset_ms, tokens_left, tokens_reset_ms, concurrent_left>}
#      or {0, scope index (0-based), "rpm"|"tpm"|"concurrency", retry_ms, <the same per scope figures>}.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid, lease = ARGV[1], tonumber(ARGV[2])
local scopes = #KEYS / 3
local figures, refusal = {}, nil
local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) or 0 end
for i = 0, scopes - 1 do
  local rk, tk, ck = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local rpm, tpm, conc = tonumber(ARGV[3 + i * 3]), tonumber(ARGV[4 + i * 3]), tonumber(ARGV[5 + i * 3])
  local req_left, req_reset, tok_left, tok_reset, conc_left = 0, 0, 0, 0, 0
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', rk, '-inf', now - 60000)
    local count = redis.call('ZCARD', rk)
    req_left = rpm - count - 1
    req_reset = 60000
    if count > 0 then
      local first = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
      req_reset = tonumber(first[2]) + 60000 - now
    end
    if count >= rpm and not refusal then
      local nth = redis.call('ZRANGE', rk, count - rpm, count - rpm, 'WITHSCORES')
      refusal = {i, 'rpm', tonumber(nth[2]) + 60000 - now}
    end
  end
  if tpm > 0 then
    redis.call('ZREMRANGEBYSCORE', tk, '-inf', now - 60000)
    local entries = redis.call('ZRANGE', tk, 0, -1, 'WITHSCORES')
    local used = 0
    for j = 1, #entries, 2 do used = used + tokens_of(entries[j]) end
    tok_left = tpm - used
    if #entries > 0 then tok_reset = tonumber(entries[2]) + 60000 - now end
    if used >= tpm and not refusal then
      local left, retry = used, 0
      for j = 1, #entries, 2 do
        left = left - tokens_of(entries[j])
        if left < tpm then retry = tonumber(entries[j + 1]) + 60000 - now break end
      end
      refusal = {i, 'tpm', retry}
    end
  end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', ck, '-inf', now)
    local busy = redis.call('ZCARD', ck)
    conc_left = conc - busy - 1
    if busy >= conc and not refusal then refusal = {i, 'concurrency', 1000} end
  end
  table.insert(figures, req_left) table.insert(figures, req_reset) table.insert(figures, tok_left)
  table.insert(figures, tok_reset) table.insert(figures, conc_left)
end
if refusal then
  local out = {0, refusal[1], refusal[2], refusal[3]}
  for _, v in ipairs(figures) do table.insert(out, v) end
  return out
end
for i = 0, scopes - 1 do
  local rk, ck = KEYS[i * 3 + 1], KEYS[i * 3 + 3]
  if tonumber(ARGV[3 + i * 3]) > 0 then
    redis.call('ZADD', rk, now, rid) redis.call('PEXPIRE', rk, 61000)
  end
  if tonumber(ARGV[5 + i * 3]) > 0 then
    redis.call('ZADD', ck, now + lease, rid) redis.call('PEXPIRE', ck, lease)
  end
end
local out = {1}
for _, v in ipairs(figures) do table.insert(out, v) end
return out
"""

# KEYS: per scope (tokens key, concurrency key); ARGV: request id, tokens, then per scope: tpm (0 = none).
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid, tokens = ARGV[1], tonumber(ARGV[2])
for i = 0, #KEYS / 2 - 1 do
  local tk, ck = KEYS[i * 2 + 1], KEYS[i * 2 + 2]
  redis.call('ZREM', ck, rid)
  if tokens > 0 and tonumber(ARGV[3 + i]) > 0 then
    redis.call('ZADD', tk, now, rid .. ':' .. tokens) redis.call('PEXPIRE', tk, 61000)
  end
end
return 1
"""


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The gateway cannot check this key's rate limits right now (Redis is unreachable); try again shortly.",
        code="limits_unavailable",
    )


class RedisRates:
    def __init__(self, url: str, namespace: str = "th") -> None:
        self.namespace = namespace
        self.client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30)
        self._sending: set[asyncio.Task[None]] = set()  # pipelines on their way (a task needs a strong reference)
        self._admissions = _TurnBatch(self, self.client.register_script(_ADMIT))
        self._releases = _TurnBatch(self, self.client.register_script(_RELEASE))

    async def admit(self, scopes: list[Scope], request_id: str) -> "_RedisTicket":
        keys: list[str] = []
        argv: list[int | str] = [request_id, LEASE_MS]
        for scope in scopes:
            base = f"{self.namespace}:rl:{scope.ident}"
            keys += [f"{base}:r", f"{base}:t", f"{base}:c"]
            limits = scope.limits
            argv += [limits.rpm or 0, limits.tpm or 0, limits.concurrency or 0]
        try:
            reply = await self._admissions.call(keys, argv)
        except (RedisError, OSError) as exc:
            log.error("rate limits: Redis is unreachable (%s); refusing requests that have limits", type(exc).__name__)
            raise unavailable() from None
        admitted = int(reply[0]) == 1
        offset = 1 if admitted else 4
        standings = [self._standing(scope, reply[offset + i * 5: offset + i * 5 + 5]) for i, scope in enumerate(scopes)]
        if not admitted:
            scope = scopes[int(reply[1])]
            limit = reply[2].decode() if isinstance(reply[2], bytes) else str(reply[2])
            for standing in standings:
                standing.requests_left += 1
                standing.concurrent_left += 1
            raise refuse(Refusal(scope, limit, int(reply[3]) / 1000, standings[int(reply[1])]), standings)
        return _RedisTicket(self, scopes, request_id, headers_for(standings))

    @staticmethod
    def _standing(scope: Scope, figures: list[int]) -> Standing:
        limits = scope.limits
        return Standing(
            rpm=limits.rpm, requests_left=int(figures[0]), requests_reset=int(figures[1]) / 1000,
            tpm=limits.tpm, tokens_left=int(figures[2]), tokens_reset=int(figures[3]) / 1000,
            concurrency=limits.concurrency, concurrent_left=int(figures[4]),
        )  # fmt: skip

    def release_later(self, scopes: list[Scope], request_id: str, tokens: int) -> None:
        """Release in the background: the response does not wait for Redis."""
        keys: list[str] = []
        for scope in scopes:
            base = f"{self.namespace}:rl:{scope.ident}"
            keys += [f"{base}:t", f"{base}:c"]
        released = self._releases.call(keys, [request_id, tokens, *[s.limits.tpm or 0 for s in scopes]])
        released.add_done_callback(lambda done: _log_failed_release(done, request_id))

    def _send_soon(self, batch: _TurnBatch) -> None:
        task = asyncio.get_running_loop().create_task(batch.send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await self._admissions.close()
        await self._releases.close()
        await self.client.aclose()


class _TurnBatch:
    """The calls of one script, sent to Redis as one pipeline of EVALSHA on a connection of the batch's
    own, one pipeline at a time: the calls of a loop turn go together, and the calls made while a
    pipeline is answered go in the next one (one round trip however many requests were admitted, or
    ended, meanwhile). redis-py's Pipeline costs a third more CPU per round trip (its connection pool,
    its retries and instrumentation), and its script pipelines ask SCRIPT EXISTS first, a second round
    trip every time; a Redis that lost the script (restarted, flushed) is sent it once and the batch again.
    The connection is opened again by the next pipeline after an error, and pinged first after 30 s idle
    (a connection a proxy dropped meanwhile is replaced, not failed)."""

    def __init__(self, owner: RedisRates, script: Any) -> None:
        self._owner = owner
        self._script = script
        self._calls: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._busy = False  # a pipeline is on its way or being answered
        self._conn = owner.client.connection_pool.make_connection()

    def call(self, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """The script's reply (or its error) for these keys and arguments, once its pipeline is answered."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.append((keys, args, future))
        if not self._busy:
            self._busy = True
            self._owner._send_soon(self)
        return future

    async def send(self) -> None:
        try:
            while True:
                await asyncio.sleep(0)  # the calls of this loop turn join
                calls, self._calls = self._calls, []
                if not calls:
                    return
                try:
                    replies = await self._pipeline([(keys, args) for keys, args, _ in calls])
                except BaseException as exc:
                    for _, _, future in calls:
                        if not future.done():
                            future.set_exception(exc if isinstance(exc, Exception) else RedisError("cancelled"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, _, future), reply in zip(calls, replies):
                    if not future.done():
                        if isinstance(reply, Exception):
                            future.set_exception(reply)
                        else:
                            future.set_result(reply)
        finally:
            self._busy = False

    async def _pipeline(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        conn, sha = self._conn, self._script.sha
        commands = [("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls]
        reconnected = reloaded = False
        while True:
            replies: list[Any] = []
            try:
                # A PING first after 30 s idle; redis-py disconnects on a failed send or read.
                await conn.send_packed_command(conn.pack_commands(commands))
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:  # this call's error reply: the others' replies still follow
                        replies.append(exc)
            except (RedisConnectionError, RedisTimeoutError):
                if reconnected or replies:  # never twice, nor once part of the pipeline was answered
                    raise
                reconnected = True  # once on a new connection (Redis restarted, or dropped this one)
                continue
            if not reloaded and any(isinstance(reply, NoScriptError) for reply in replies):
                reloaded = True
                await self._owner.client.script_load(self._script.script)
                continue
            return replies

    async def close(self) -> None:
        await self._conn.disconnect()


def _log_failed_release(done: asyncio.Future[Any], request_id: str) -> None:
    exc = None if done.cancelled() else done.exception()
    if exc is not None:  # the lease frees the slot; the tokens go uncounted
        log.warning("rate limits: could not release %s in Redis (%s)", request_id, type(exc).__name__)


class _RedisTicket:
    __slots__ = ("_owner", "_scopes", "_request_id", "headers", "_released")

    def __init__(self, owner: RedisRates, scopes: list[Scope], request_id: str, headers: dict[str, str]) -> None:
        self._owner, self._scopes, self._request_id, self.headers = owner, scopes, request_id, headers
        self._released = False

    def release(self, tokens: int) -> None:
        if not self._released:
            self._released = True
            self._owner.release_later(self._scopes, self._request_id, tokens)
