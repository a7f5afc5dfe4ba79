"""The process-wide parts of a running gateway, built by the app factory and torn down with it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiohttp

from tokenhub import __version__
from tokenhub.accounts.service import count_admins, create_user
from tokenhub.billing.ledger import LedgerWriter
from tokenhub.billing.sweeper import Sweeper, new_instance_id
from tokenhub.channels.service import upsert_env_channel
from tokenhub.config import Settings
from tokenhub.directory import Directory
from tokenhub.errors import Conflict
from tokenhub.limits.rates import MemoryRates, RateLimiter
from tokenhub.metrics import Metrics
from tokenhub.relay.fetch import ImageFetcher
from tokenhub.relay.health import ChannelHealth
from tokenhub.relay.inflight import InFlight
from tokenhub.secrets_box import SecretBox, load_or_create_secret
from tokenhub.storage import AsyncEngine, migrate
from tokenhub.storage.engine import create_engine, deployment_id
from tokenhub.storage.resealing import reseal
from tokenhub.upstream import Timeouts
from tokenhub.vendors import env_channel_keys

log = logging.getLogger("tokenhub")


@dataclass
class Gateway:
    settings: Settings
    engine: AsyncEngine
    box: SecretBox
    directory: Directory
    ledger: LedgerWriter
    sweeper: Sweeper
    http: aiohttp.ClientSession
    fetcher: ImageFetcher
    instance_id: str = field(default="")
    rates: RateLimiter = field(default_factory=MemoryRates)
    health: ChannelHealth = field(default_factory=ChannelHealth)
    metrics: Metrics = field(default_factory=Metrics)
    inflight: InFlight = field(default_factory=InFlight)  # the requests being served (drain, client disconnects)
    draining: bool = False  # SIGTERM received: readiness fails, no new requests

    @classmethod
    async def start(cls, settings: Settings) -> "Gateway":
        engine = create_engine(settings.database_url)
        await migrate.upgrade(engine)
        box = SecretBox(load_or_create_secret(settings.home, settings.secret_key))
        await bootstrap(engine, box, settings)
        timeouts = Timeouts(connect=settings.connect_timeout, first_byte=settings.read_timeout, idle=settings.idle_timeout)
        directory = Directory(engine, box, settings.refresh_interval, timeouts)
        await directory.load()
        instance_id = new_instance_id()
        metrics = Metrics()
        ledger = LedgerWriter(engine, instance_id, on_overage=metrics.overcharged)
        metrics.watch_ledger(ledger.known)
        ledger.start()
        sweeper = Sweeper(engine, ledger, instance_id, settings.hold_sweep_after)
        await sweeper.register()
        await sweeper.sweep()
        sweeper.start()
        directory.start()
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout),
            auto_decompress=True,
            # One session serves every customer: a cookie an upstream (its CDN) sets on one call must never go
            # out with another's, nor pile up in a jar every call filters.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Upstreams see who calls, not aiohttp's default agent (naming it here rather than skipping it:
            # a skipped header costs aiohttp a copy of every request's headers).
            headers={"User-Agent": f"TokenHub/{__version__}"},
        )
        fetcher = ImageFetcher(allow_private=settings.fetch_allow_private)
        rates: RateLimiter = MemoryRates()
        if settings.redis_url:
            from tokenhub.limits.redis_rates import RedisRates  # redis-py loads only where Redis is configured

            async with engine.begin() as conn:
                rates = RedisRates(settings.redis_url, namespace=f"th:{await deployment_id(conn):x}")
        gateway = cls(settings, engine, box, directory, ledger, sweeper, http, fetcher, instance_id, rates, metrics=metrics)
        gateway.inflight.start()
        return gateway

    async def drain(self) -> None:
        """SIGTERM: readiness fails; requests in flight get ``drain_timeout`` seconds to end, then open
        relay calls are cut — each answered in its protocol and settled for what it delivered."""
        self.draining = True
        await self.inflight.drain(self.settings.drain_timeout)

    async def stop(self) -> None:
        await self.inflight.stop()
        await self.directory.stop()
        await self.sweeper.stop()
        await self.ledger.close()
        try:
            await self.sweeper.unregister()
        except Exception as exc:  # the sweeper of the next start cleans up instead
            log.warning("could not unregister this process: %s", type(exc).__name__)
        await self.rates.close()
        await self.http.close()
        await self.fetcher.close()
        await self.engine.dispose()


async def bootstrap(engine: AsyncEngine, box: SecretBox, settings: Settings) -> None:
    """Start duties: secrets sealed by an earlier release resealed; channels for upstream keys in the
    environment, and the first admin."""
    async with engine.begin() as conn:
        await reseal(conn, box)
        for provider, key in env_channel_keys(settings.upstream_env).items():
            await upsert_env_channel(conn, box, provider, key)
        if await count_admins(conn) == 0:
            if settings.admin_email and settings.admin_password:
                try:
                    await create_user(conn, settings.admin_email, password=settings.admin_password, is_admin=True)
                    log.info("created the first admin, %s, from TOKENHUB_ADMIN_EMAIL", settings.admin_email)
                except Conflict:
                    log.warning("TOKENHUB_ADMIN_EMAIL names an existing user who is not an admin; no admin was created")
            else:
                log.warning(
                    "No admin exists yet. Create one with:  tokenhub user create you@example.com --admin --password '...'"
                    "  (or start with TOKENHUB_ADMIN_EMAIL and TOKENHUB_ADMIN_PASSWORD set)"
                )
