"""Requests per minute, tokens per minute and concurrency: the counters themselves (memory and Redis)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tokenhub.errors import RateLimited, ServiceUnavailable
from tokenhub.limits import redis_rates as rates_module
from tokenhub.limits.policy import Limits
from tokenhub.limits.rates import MemoryRates, Scope
from tokenhub.limits.redis_rates import RedisRates

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scope(label: str = "key", **limits: int) -> Scope:
    return Scope(f"k:{uuid.uuid4().hex}", label, Limits(**limits))


def test_rpm_is_exact_at_the_boundary_and_frees_after_a_minute():
    clock = Clock()
    rates, s = MemoryRates(clock), scope(rpm=3)

    async def go() -> None:
        tickets = []
        for left in (2, 1, 0):
            ticket = await rates.admit([s], "r")
            assert ticket.headers["x-ratelimit-remaining-requests"] == str(left)
            assert ticket.headers["x-ratelimit-limit-requests"] == "3"
            tickets.append(ticket)
            clock.now += 10
        for ticket in tickets:
            ticket.release(0)
        with pytest.raises(RateLimited) as refused:
            await rates.admit([s], "r")
        # the first request (at t=1000) leaves the window at t=1060; now is 1030
        assert refused.value.headers["Retry-After"] == "30"
        assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.value.code == "rate_limit_exceeded"
        clock.now = 1060.0
        (await rates.admit([s], "r")).release(0)

    asyncio.run(go())


def test_tpm_counts_tokens_when_requests_end():
    clock = Clock()
    rates, s = MemoryRates(clock), scope(tpm=100)

    async def go() -> None:
        (await rates.admit([s], "a")).release(60)
        ticket = await rates.admit([s], "b")  # 60 < 100: admitted
        assert ticket.headers["x-ratelimit-remaining-tokens"] == "40"
        ticket.release(40)  # now exactly 100 used
        with pytest.raises(RateLimited) as refused:
            await rates.admit([s], "c")
        assert refused.value.headers["x-ratelimit-remaining-tokens"] == "0"
        assert "tokens per minute" in refused.value.message
        clock.now += 60
        (await rates.admit([s], "d")).release(0)

    asyncio.run(go())


def test_concurrency_and_refusals_take_nothing():
    rates = MemoryRates(Clock())
    key, account = scope(concurrency=1), scope("account", rpm=10)

    async def go() -> None:
        first = await rates.admit([key, account], "a")
        with pytest.raises(RateLimited) as refused:
            await rates.admit([key, account], "b")
        assert "requests in flight" in refused.value.message
        first.release(0)
        second = await rates.admit([key, account], "c")
        # two requests admitted into the account's window; the refused one left no trace
        assert second.headers["x-ratelimit-remaining-requests"] == "8"
        second.release(0)

    asyncio.run(go())


@pytest.fixture
def redis_rates():
    async def check() -> bool:
        rates = RedisRates(REDIS_URL)
        try:
            return await rates.ping()
        finally:
            await rates.close()

    if not asyncio.run(check()):
        pytest.skip("Redis at 127.0.0.1:6379 is not running; .ci/run starts it")
    return lambda: RedisRates(REDIS_URL)


def test_redis_shares_the_counters_between_limiters(redis_rates):
    """Two limiters (as in two processes) on one Redis: one window, exact at the boundary."""
    s = scope(rpm=4, concurrency=3, tpm=1000)

    async def go() -> None:
        a, b = redis_rates(), redis_rates()
        try:
            admitted = await asyncio.gather(*(limiter.admit([s], f"r{i}") for i, limiter in enumerate([a, b, a])))
            assert sorted(t.headers["x-ratelimit-remaining-concurrency"] for t in admitted) == ["0", "1", "2"]
            with pytest.raises(RateLimited) as busy:
                await b.admit([s], "r3")
            assert "requests in flight" in busy.value.message
            for ticket in admitted:
                ticket.release(10)
            await asyncio.sleep(0.1)  # releases run in the background
            fourth = await b.admit([s], "r4")
            assert fourth.headers["x-ratelimit-remaining-requests"] == "0"
            assert fourth.headers["x-ratelimit-remaining-tokens"] == "970"
            fourth.release(0)
            with pytest.raises(RateLimited) as over:
                await a.admit([s], "r5")
            assert "requests per minute" in over.value.message
            assert 55 <= int(over.value.headers["Retry-After"]) <= 60
        finally:
            await a.close()
            await b.close()

    asyncio.run(go())


def test_unreachable_redis_fails_closed():
    async def go() -> None:
        rates = RedisRates("redis://127.0.0.1:1/0")
        try:
            with pytest.raises(ServiceUnavailable) as err:
                await rates.admit([scope(rpm=5)], "r")
            assert err.value.status == 503 and err.value.code == "limits_unavailable"
        finally:
            await rates.close()

    asyncio.run(go())


def test_redis_that_lost_its_scripts_still_admits_and_releases(redis_rates):
    """Admissions and releases go to Redis in pipelines of EVALSHA; a Redis restarted or flushed since
    (SCRIPT FLUSH) gets the scripts again, and the batch is answered as if nothing happened."""
    s = scope(concurrency=2)

    async def go() -> None:
        rates = redis_rates()
        try:
            await rates.client.script_flush()
            both = await asyncio.gather(rates.admit([s], "f1"), rates.admit([s], "f2"))  # one loop turn, one pipeline
            assert sorted(t.headers["x-ratelimit-remaining-concurrency"] for t in both) == ["0", "1"]
            with pytest.raises(RateLimited):
                await rates.admit([s], "f3")
            await rates.client.script_flush()
            for ticket in both:
                ticket.release(0)
            await asyncio.sleep(0.1)  # releases run in the background
            again = await rates.admit([s], "f4")
            assert again.headers["x-ratelimit-remaining-concurrency"] == "1"
            again.release(0)
        finally:
            await rates.close()

    asyncio.run(go())


def test_redis_connection_dropped_between_pipelines_is_replaced(redis_rates):
    """Each script's pipelines go on a connection of their own; one that Redis (or a proxy) closed since
    the last pipeline is replaced by the next one, which is answered as if nothing happened."""
    s = scope(rpm=10, concurrency=5)  # a slot in flight: each request is admitted and released in Redis

    async def go() -> None:
        rates = redis_rates()
        try:
            (await rates.admit([s], "d1")).release(0)
            await asyncio.sleep(0.1)  # the release's pipeline, in the background
            scripts = [c["id"] for c in await rates.client.client_list() if c.get("cmd") == "evalsha"]
            assert len(scripts) >= 2  # the admissions' connection and the releases'
            for ident in scripts:
                await rates.client.client_kill_filter(_id=ident)
            ticket = await rates.admit([s], "d2")
            assert ticket.headers["x-ratelimit-remaining-requests"] == "8"
            ticket.release(0)
            await asyncio.sleep(0.1)
            assert await rates.client.zcard(f"th:rl:{s.ident}:c") == 0  # released on a new connection too
        finally:
            await rates.close()

    asyncio.run(go())


def _evalsha_calls(info: dict) -> int:
    return int(info.get("cmdstat_evalsha", {}).get("calls", 0))


def test_a_grant_admits_the_next_requests_without_asking_redis(redis_rates):
    """Without a concurrency limit, a process is granted request slots ahead (twice as many each time
    they run out in time) and admits from them in memory: 60 requests in a row ask Redis a handful of
    times, their headers count down by one each, and the log counts each admitted request, plus the
    unused slots until they are given back."""
    s = scope(rpm=1000)

    async def go() -> None:
        rates = redis_rates()
        try:
            before = _evalsha_calls(await rates.client.info("commandstats"))
            left = []
            for i in range(60):
                ticket = await rates.admit([s], f"g{i}")
                left.append(int(ticket.headers["x-ratelimit-remaining-requests"]))
                ticket.release(25)  # no tokens limit: nothing to tell Redis
            asked = _evalsha_calls(await rates.client.info("commandstats")) - before
            assert left == list(range(999, 939, -1))
            assert asked <= 7, asked  # grants of 1, 2, 4, 8, 16, 32 (and the info calls are not EVALSHA)
            log = f"th:rl:{s.ident}:r"
            assert await rates.client.zcard(log) >= 60  # the 60, and slots granted but not used yet
            await asyncio.sleep(rates_module.GRANT_MS / 1000 + 0.2)  # the grant ends: its unused slots go back
            assert await rates.client.zcard(log) == 60
        finally:
            await rates.close()

    asyncio.run(go())


def test_grants_to_several_processes_never_admit_more_than_the_limit(redis_rates):
    """Three limiters (three processes) admitting at once from one requests-per-minute limit: together
    they never admit more than the limit, and slots one of them was granted but did not use are given
    back, so the whole minute's requests are admitted in the end, not one more."""
    s = scope(rpm=200)

    async def go() -> None:
        limiters = [redis_rates() for _ in range(3)]
        admitted = 0

        async def burst(rates: RedisRates, n: int) -> int:
            ok = 0
            for _ in range(n):
                try:
                    (await rates.admit([s], uuid.uuid4().hex)).release(0)
                    ok += 1
                except RateLimited:
                    pass
            return ok

        try:
            admitted += sum(await asyncio.gather(*(burst(r, 80) for r in limiters)))
            assert admitted <= 200
            await asyncio.sleep(rates_module.GRANT_MS / 1000 + 0.2)  # grants end, unused slots go back
            admitted += sum(await asyncio.gather(*(burst(r, 80) for r in limiters)))
            assert admitted == 200
            with pytest.raises(RateLimited) as refused:
                await limiters[0].admit([s], "one-more")
            assert refused.value.headers["x-ratelimit-remaining-requests"] == "0"
        finally:
            for rates in limiters:
                await rates.close()

    asyncio.run(go())


def test_tokens_per_minute_under_a_grant(redis_rates):
    """A grant admits against the tokens Redis counted, less what this process's requests used since;
    once they are used up the next request asks Redis, which has counted them, and refuses it."""
    s = scope(tpm=100)

    async def go() -> None:
        rates = redis_rates()
        try:
            (await rates.admit([s], "t1")).release(60)
            second = await rates.admit([s], "t2")  # 60 < 100, from the grant
            assert second.headers["x-ratelimit-remaining-tokens"] == "40"
            second.release(50)  # 110: over
            await asyncio.sleep(0.05)  # the tokens reach Redis in the background
            with pytest.raises(RateLimited) as refused:
                await rates.admit([s], "t3")
            assert "tokens per minute" in refused.value.message
            assert 55 <= int(refused.value.headers["Retry-After"]) <= 60  # Redis's answer: when the first 60 leave
        finally:
            await rates.close()

    asyncio.run(go())


def test_grants_with_a_key_and_its_account_limited_never_admit_more_than_the_account_allows(redis_rates):
    """A key and its account both limit requests per minute, each scope granted on its own: the account's
    smaller limit runs out first, its grants are asked for again and again (each replacing the last and
    giving back what it left), and two processes together still admit exactly the account's limit."""
    key, account = scope(rpm=1000), scope("account", rpm=50)

    async def go() -> None:
        limiters = [redis_rates(), redis_rates()]

        async def burst(rates: RedisRates, n: int) -> int:
            ok = 0
            for _ in range(n):
                try:
                    (await rates.admit([key, account], uuid.uuid4().hex)).release(0)
                    ok += 1
                except RateLimited as refused:
                    assert "account allows 50 requests per minute" in refused.message
            return ok

        try:
            admitted = sum(await asyncio.gather(*(burst(r, 40) for r in limiters)))
            assert admitted <= 50
            await asyncio.sleep(rates_module.GRANT_MS / 1000 + 0.2)
            admitted += sum(await asyncio.gather(*(burst(r, 40) for r in limiters)))
            assert admitted == 50
            assert await limiters[0].client.zcard(f"th:rl:{account.ident}:r") == 50
        finally:
            for rates in limiters:
                await rates.close()

    asyncio.run(go())
