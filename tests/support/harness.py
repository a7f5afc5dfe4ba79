"""A running gateway (real HTTP on loopback, real database) and the operator's hands on it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

import asyncpg
import openai
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.support.servers import ServerThread
from tokenhub.accounts import service as accounts
from tokenhub.app import create_app
from tokenhub.billing import service as billing
from tokenhub.channels import service as channels
from tokenhub.config import Settings, normalize_database_url
from tokenhub.gateway import Gateway
from tokenhub.money import usd_to_nanos
from tokenhub.storage.tables import requests
from tokenhub.surface import GATEWAY

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def create_pg_database() -> str:
    name = f"tokenhub_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return name


def drop_pg_database(name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def gateway_settings(home: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "database_url": normalize_database_url(database_url),
        "secret_key": "test-secret-key",
        "refresh_interval": 0.05,
        "drain_timeout": 2.0,  # a stopping test gateway does not wait 30 s for requests a test left open
    }
    values.update(overrides)
    return Settings(**values)


class Harness:
    """One gateway process (in a thread), with helpers that use the real service layer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = ServerThread(create_app(settings), shutdown_timeout=2).start()
        self.base_url = f"{self.server.url}/api/v1"
        self._clients: list[openai.OpenAI] = []

    @property
    def gw(self) -> Gateway:
        return self.server.app[GATEWAY]

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self.server.stop()

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.server.run(coro)

    def write(self, fn: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        async def go() -> Any:
            async with self.gw.engine.begin() as conn:
                result = await fn(conn)
            await self.gw.directory.refresh_if_changed()
            return result

        return self.run(go())

    def read(self, fn: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        async def go() -> Any:
            await self.gw.ledger.flush()
            async with self.gw.engine.connect() as conn:
                return await fn(conn)

        return self.run(go())

    def flush(self) -> None:
        self.run(self.gw.ledger.flush())

    # -- the operator's hands ----------------------------------------------------------------

    def user(self, email: str, credits_usd: str | None = "10", *, admin: bool = False) -> dict[str, Any]:
        user = self.write(lambda c: accounts.create_user(c, email, is_admin=admin))
        if credits_usd:
            self.write(lambda c: billing.add_credits(c, email, usd_to_nanos(credits_usd), note="test credit"))
        return user

    def key(self, email: str, **kwargs: Any) -> str:
        plaintext, _ = self.write(lambda c: accounts.create_key(c, email, **kwargs))
        return plaintext

    def channel(self, provider: str, base_url: str, api_key: str = "sk-upstream", **kwargs: Any) -> dict[str, Any]:
        catalog = self.gw.directory.catalog
        return self.write(
            lambda c: channels.add_channel(c, self.gw.box, catalog, provider=provider, api_key=api_key, base_url=base_url, **kwargs)
        )

    def credits(self, email: str) -> dict[str, Any]:
        return self.read(lambda c: billing.credits_summary(c, email))

    def request_row(self, request_id: str | None = None) -> Row[Any]:
        """The ``requests`` row of a request id (the X-Request-Id header), or the newest one."""
        query = select(requests)
        query = query.where(requests.c.id == request_id) if request_id else query.order_by(requests.c.created_at.desc()).limit(1)

        async def read(conn: AsyncConnection) -> Row[Any]:
            return (await conn.execute(query)).one()

        return self.read(read)

    def ledger_report(self) -> billing.LedgerReport:
        return self.read(billing.check_ledger)

    def client(self, key: str, **kwargs: Any) -> openai.OpenAI:
        client = openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, **kwargs)
        self._clients.append(client)
        return client
