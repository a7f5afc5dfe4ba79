"""The rate counters in Redis, shared by every gateway process (TOKENHUB_REDIS_URL).

One Lua script admits a request against every scope at once, atomically, using Redis's own clock
(so the processes' clocks do not matter). Per scope there are three sorted sets, under the deployment's namespace
(``th:<deployment id>``, so deployments sharing a Redis never mix):

* ``th:rl:<scope>:r`` — admitted request ids, scored by time (requests per minute);
* ``th:rl:<scope>:t`` — ``<request id>:<tokens>`` of ended requests, scored by time (tokens per minute);
* ``th:rl:<scope>:c`` — request ids in flight, scored by when their lease runs out (concurrency).
  A process killed mid-request cannot release its slots; the lease frees them after ``LEASE``.

**Grants.** A request whose scopes have no concurrency limit need not ask Redis each time: the script
may grant the asking process more request slots than the one it needs (``want``, at most a quarter of
what is left in the window, ``MAX_GRANT``), each a member of the requests log scored ``GRANT_MS``
ahead, and the process admits its next requests from them, in memory, until they run out or
``GRANT_MS`` passes; then it asks again, for twice as many if they ran out in time, for as many as it
used if not. Slots still unused when a grant ends are given back (removed from the log). A slot
counts in the window from when it was granted until a minute after the latest moment it could be
used, so every process together never admits more than the limit in any minute: a grant only makes a
scope's counting stricter, for the slots one process holds and another cannot use meanwhile. A
process killed with slots unused leaves them counted for at most ``GRANT_MS`` plus a minute. The
tokens per minute a grant admits against are what Redis counted when it was granted, less what this
process's requests have used since; requests of other processes show at the next grant.

If Redis cannot be reached, requests that have rate limits fail closed (503): never free service.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tokenhub.errors import ServiceUnavailable
from tokenhub.limits.policy import Limits
from tokenhub.limits.rates import Refusal, Scope, Standing, headers_for, refuse

log = logging.getLogger("tokenhub.limits")

LEASE_MS = 15 * 60 * 1000  # the longest a request may hold a concurrency slot
GRANT_MS = 1000  # how long a process may admit from the request slots Redis granted it
MAX_GRANT = 256  # request slots one grant takes at most

# ARGV: request id, lease ms, grant ms (0: this request alone, counted from now), then per scope: rpm,
# tpm, concurrency (0 = none), the request slots wanted (1: this request's alone).
# Returns {1, <per scope: requests_left, requests_reset_ms, tokens_left, tokens_reset_ms, concurrent_left, granted>}
#      or {0, scope index (0-based), "rpm"|"tpm"|"concurrency", retry_ms, <the same per scope figures>}.
# A grant of n slots adds this request's id and n - 1 more members (``<id>+1`` …) to the requests log,
# scored ``grant`` ms ahead: they count until a minute after the last moment the process may use them.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid, lease, grant = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local scopes = #KEYS / 3
local figures, refusal = {}, nil
local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) or 0 end
for i = 0, scopes - 1 do
  local rk, tk, ck = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local rpm, tpm = tonumber(ARGV[4 + i * 4]), tonumber(ARGV[5 + i * 4])
  local conc, want = tonumber(ARGV[6 + i * 4]), tonumber(ARGV[7 + i * 4])
  local req_left, req_reset, tok_left, tok_reset, conc_left, granted = 0, 0, 0, 0, 0, 0
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', rk, '-inf', now - 60000)
    local count = redis.call('ZCARD', rk)
    granted = math.max(1, math.min(want, math.floor((rpm - count) / 4)))
    req_left = rpm - count - granted
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
  table.insert(figures, tok_reset) table.insert(figures, conc_left) table.insert(figures, granted)
end
if refusal then
  local out = {0, refusal[1], refusal[2], refusal[3]}
  for _, v in ipairs(figures) do table.insert(out, v) end
  return out
end
for i = 0, scopes - 1 do
  local rk, ck = KEYS[i * 3 + 1], KEYS[i * 3 + 3]
  local granted = figures[i * 6 + 6]
  if granted > 0 then
    local at = now + grant
    local members = {at, rid}
    for j = 1, granted - 1 do
      table.insert(members, at) table.insert(members, rid .. '+' .. j)
    end
    redis.call('ZADD', rk, unpack(members)) redis.call('PEXPIRE', rk, 61000 + grant)
  end
  if tonumber(ARGV[6 + i * 4]) > 0 then
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

# KEYS: a scope's requests log; ARGV: the granted slots given back unused.
_GIVE_BACK = """
return redis.call('ZREM', KEYS[1], unpack(ARGV))
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
        self._give_backs = _TurnBatch(self, self.client.register_script(_GIVE_BACK))
        self._grants: dict[str, _Grant] = {}  # by scope: what this process may admit without asking
        self._asking: dict[str, asyncio.Future[None]] = {}  # by scope: a grant on its way
        self._unwritten: dict[str, int] = {}  # by scope: tokens of ended requests not yet counted in Redis

    async def admit(self, scopes: list[Scope], request_id: str) -> _RedisTicket:
        if any(scope.limits.concurrency is not None for scope in scopes):
            return await self._ask(scopes, request_id, granting=False)  # a slot in flight per request: Redis every time
        while (ticket := self._admit_granted(scopes, request_id)) is None:
            asking = {future for scope in scopes if (future := self._asking.get(scope.ident)) is not None}
            if not asking:
                return await self._ask(scopes, request_id, granting=True)
            await asyncio.wait(asking)  # a grant for one of these scopes is on its way: wait for it, not ask again
        return ticket

    def _admit_granted(self, scopes: list[Scope], request_id: str) -> _RedisTicket | None:
        """Admitted from this process's grants, in memory; None if one of the scopes has none left."""
        now = asyncio.get_running_loop().time()
        grants: list[_Grant] = []
        for scope in scopes:
            grant = self._grants.get(scope.ident)
            if grant is None or not grant.admits(scope.limits, now):
                return None
            grants.append(grant)
        standings = [grant.take(scope.limits, now) for scope, grant in zip(scopes, grants)]
        return _RedisTicket(self, scopes, request_id, headers_for(standings), granted=True)

    async def _ask(self, scopes: list[Scope], request_id: str, *, granting: bool) -> _RedisTicket:
        """Admission by Redis; ``granting``: with more request slots for this process's next requests."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        keys: list[str] = []
        argv: list[int | str] = [request_id, LEASE_MS, GRANT_MS if granting else 0]
        for scope in scopes:
            base = f"{self.namespace}:rl:{scope.ident}"
            keys += [f"{base}:r", f"{base}:t", f"{base}:c"]
            limits = scope.limits
            argv += [limits.rpm or 0, limits.tpm or 0, limits.concurrency or 0, self._want(scope, sent) if granting else 1]
        asking: asyncio.Future[None] | None = None
        if granting:
            asking = loop.create_future()
            for scope in scopes:
                self._asking.setdefault(scope.ident, asking)
        try:
            reply = await self._admissions.call(keys, argv)
        except (RedisError, OSError) as exc:
            log.error("rate limits: Redis is unreachable (%s); refusing requests that have limits", type(exc).__name__)
            raise unavailable() from None
        finally:
            if asking is not None:
                for scope in scopes:
                    if self._asking.get(scope.ident) is asking:
                        del self._asking[scope.ident]
                asking.set_result(None)
        admitted = int(reply[0]) == 1
        offset = 1 if admitted else 4
        figures = [reply[offset + i * 6: offset + i * 6 + 6] for i in range(len(scopes))]
        standings = [self._standing(scope, f) for scope, f in zip(scopes, figures)]
        if not admitted:
            scope = scopes[int(reply[1])]
            limit = reply[2].decode() if isinstance(reply[2], bytes) else str(reply[2])
            for standing, f in zip(standings, figures):  # nothing was taken
                standing.requests_left += int(f[5])
                standing.concurrent_left += 1
            raise refuse(Refusal(scope, limit, int(reply[3]) / 1000, standings[int(reply[1])]), standings)
        if granting:
            for scope, f, standing in zip(scopes, figures, standings):
                self._granted(scope, request_id, int(f[5]), standing, sent)
        return _RedisTicket(self, scopes, request_id, headers_for(standings), granted=granting)

    def _want(self, scope: Scope, now: float) -> int:
        """The request slots to ask for: twice the last grant's if it ran out before its end, else as many
        as it admitted (one, for a scope with no grant yet); one for a scope without a requests limit."""
        grant = self._grants.get(scope.ident)
        if scope.limits.rpm is None or grant is None:
            return 1
        if now < grant.until:
            return min(MAX_GRANT, 2 * grant.size)
        return max(1, grant.uses)

    def _granted(self, scope: Scope, request_id: str, granted: int, standing: Standing, sent: float) -> None:
        """Keep what Redis granted this process in ``scope`` (its slots beyond this request's, the figures
        its headers and tokens per minute start from); give back what is left of the last grant."""
        old = self._grants.get(scope.ident)
        if old is not None:
            self._give_back(scope.ident, old)
        tokens_left = standing.tokens_left - self._unwritten.get(scope.ident, 0)
        grant = _Grant(sent + GRANT_MS / 1000, granted, [f"{request_id}+{j}" for j in range(1, granted)], standing, tokens_left)
        self._grants[scope.ident] = grant
        standing.requests_left += len(grant.slots)  # the slots this process holds are left for its next requests
        asyncio.get_running_loop().call_at(grant.until, self._expire, scope, grant)

    def _expire(self, scope: Scope, grant: _Grant) -> None:
        if self._grants.get(scope.ident) is not grant:
            return
        self._give_back(scope.ident, grant)
        if grant.uses <= 1:  # nothing to size the next grant by: forget the scope
            del self._grants[scope.ident]

    def _give_back(self, ident: str, grant: _Grant) -> None:
        """Remove a grant's unused slots from the scope's requests log, in the background."""
        if not grant.slots:
            return
        slots, grant.slots = grant.slots, []
        given = self._give_backs.call([f"{self.namespace}:rl:{ident}:r"], slots)
        given.add_done_callback(partial(_log_failed, "give back the request slots granted to", ident))

    @staticmethod
    def _standing(scope: Scope, figures: list[int]) -> Standing:
        limits = scope.limits
        return Standing(
            rpm=limits.rpm, requests_left=int(figures[0]), requests_reset=int(figures[1]) / 1000,
            tpm=limits.tpm, tokens_left=int(figures[2]), tokens_reset=int(figures[3]) / 1000,
            concurrency=limits.concurrency, concurrent_left=int(figures[4]),
        )  # fmt: skip

    def release_later(self, scopes: list[Scope], request_id: str, tokens: int, *, granted: bool) -> None:
        """Release in the background: the response does not wait for Redis. A request admitted by a
        grant holds no slot in flight: only its tokens are counted (in its scopes with a tokens limit)."""
        if granted:
            scopes = [scope for scope in scopes if scope.limits.tpm is not None]
            if tokens <= 0 or not scopes:
                return
            for scope in scopes:
                self._unwritten[scope.ident] = self._unwritten.get(scope.ident, 0) + tokens
                grant = self._grants.get(scope.ident)
                if grant is not None:
                    grant.tokens_left -= tokens
        keys: list[str] = []
        for scope in scopes:
            base = f"{self.namespace}:rl:{scope.ident}"
            keys += [f"{base}:t", f"{base}:c"]
        released = self._releases.call(keys, [request_id, tokens, *[s.limits.tpm or 0 for s in scopes]])
        released.add_done_callback(partial(_log_failed, "release", request_id))
        if granted:
            released.add_done_callback(partial(self._written, [scope.ident for scope in scopes], tokens))

    def _written(self, idents: list[str], tokens: int, _: asyncio.Future[Any]) -> None:
        for ident in idents:
            left = self._unwritten[ident] - tokens
            if left:
                self._unwritten[ident] = left
            else:
                del self._unwritten[ident]

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
        for ident, grant in self._grants.items():
            self._give_back(ident, grant)
        self._grants.clear()
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        for batch in (self._admissions, self._releases, self._give_backs):
            await batch.close()
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


def _log_failed(what: str, ident: str, done: asyncio.Future[Any]) -> None:
    exc = None if done.cancelled() else done.exception()
    if exc is not None:  # a lease frees a slot in flight, the window frees granted slots; tokens go uncounted
        log.warning("rate limits: could not %s %s in Redis (%s)", what, ident, type(exc).__name__)


class _Grant:
    """Request slots (and the right to admit against a tokens-per-minute figure) Redis granted this
    process in one scope, until ``until`` (the loop's clock)."""

    __slots__ = ("until", "size", "slots", "uses", "requests_left", "requests_reset_at", "tokens_left", "tokens_reset_at")

    def __init__(self, until: float, size: int, slots: list[str], standing: Standing, tokens_left: int) -> None:
        self.until, self.size, self.slots, self.uses = until, size, slots, 1  # the asking request used one
        start = until - GRANT_MS / 1000
        self.requests_left = standing.requests_left  # in the window, beyond what this process holds
        self.requests_reset_at = start + standing.requests_reset
        self.tokens_left = tokens_left  # as Redis counted them, less this process's tokens since
        self.tokens_reset_at = start + standing.tokens_reset

    def admits(self, limits: Limits, now: float) -> bool:
        return now < self.until and (limits.rpm is None or bool(self.slots)) and (limits.tpm is None or self.tokens_left > 0)

    def take(self, limits: Limits, now: float) -> Standing:
        """One request admitted: its slot taken; what is left, for its headers."""
        if limits.rpm is not None:
            self.slots.pop()
        self.uses += 1
        return Standing(
            rpm=limits.rpm, requests_left=self.requests_left + len(self.slots), requests_reset=self.requests_reset_at - now,
            tpm=limits.tpm, tokens_left=self.tokens_left, tokens_reset=self.tokens_reset_at - now,
        )  # fmt: skip


class _RedisTicket:
    __slots__ = ("_owner", "_scopes", "_request_id", "headers", "_granted", "_released")

    def __init__(self, owner: RedisRates, scopes: list[Scope], request_id: str, headers: dict[str, str], *, granted: bool) -> None:
        self._owner, self._scopes, self._request_id, self.headers = owner, scopes, request_id, headers
        self._granted = granted  # admitted by a grant: no slot in flight to free
        self._released = False

    def release(self, tokens: int) -> None:
        if not self._released:
            self._released = True
            self._owner.release_later(self._scopes, self._request_id, tokens, granted=self._granted)
