"""What the operator's commands share: failing with a message, one database transaction per command,
USD options, tables, limit options.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, NoReturn

import click

from tokenhub.config import Settings
from tokenhub.errors import GatewayError
from tokenhub.money import MoneyError, format_usd, usd_to_nanos
from tokenhub.storage import AsyncConnection


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def run_db(fn: Callable[[AsyncConnection, Settings], Awaitable[Any]], *, write: bool = True) -> Any:
    """Open the database (migrating it on first use), run ``fn`` in one transaction, close."""
    from tokenhub.storage import migrate
    from tokenhub.storage.engine import create_engine

    settings = Settings.from_env()

    async def main() -> Any:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            await migrate.upgrade(engine)
            async with engine.begin() if write else engine.connect() as conn:
                return await fn(conn, settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except GatewayError as err:
        fail(err.message)
    except MoneyError as err:
        fail(str(err))


def usd_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return usd_to_nanos(value)
    except MoneyError as err:
        fail(f"{name}: {err}")


def last_day(expires_at: datetime) -> str:
    """A key stops at midnight UTC after the last day it works; show that day, as it was given."""
    return (expires_at - timedelta(microseconds=1)).date().isoformat()


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def describe_db(settings: Settings) -> str:
    if settings.is_sqlite:
        return settings.database_url.split("///", 1)[-1]
    return settings.database_url.split("@")[-1]


def limit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--rpm, --tpm, --concurrency and the spend limits by period; "none" clears one (on update)."""
    options = [
        click.option("--rpm", help="Requests per minute."),
        click.option("--tpm", help="Tokens per minute (input + output)."),
        click.option("--concurrency", help="Requests in flight at once."),
        click.option("--daily-limit", "daily_limit", help="Spending limit per UTC day, in USD."),
        click.option("--weekly-limit", "weekly_limit", help="Spending limit per ISO week (UTC, from Monday), in USD."),
        click.option("--monthly-limit", "monthly_limit", help="Spending limit per UTC calendar month, in USD."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def given_limits(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: values[name]
        for name in ("rpm", "tpm", "concurrency", "daily_limit", "weekly_limit", "monthly_limit")
        if values.get(name) is not None
    }


def describe_limits(record: dict[str, Any]) -> str:
    from tokenhub.limits.policy import Limits

    parts = []
    for name in Limits.__dataclass_fields__:
        value = record.get(name)
        if value is not None:
            label = name.removesuffix("_nanos").replace("_", "-")
            parts.append(f"{label}={'$' + format_usd(value) if name.endswith('_nanos') else value}")
    return ", ".join(parts) or "no limits"
