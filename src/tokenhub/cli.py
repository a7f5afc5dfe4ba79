"""The ``tokenhub`` command: serve the gateway, and the operator's commands.

Every operator command works directly on the configured database (TOKENHUB_DATABASE_URL, or the
embedded SQLite file under TOKENHUB_HOME) through the same service layer as the admin API, and
running gateways pick the change up within a second. Bad input prints ``error: …`` on stderr and
exits with status 1.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, NoReturn

import click
from sqlalchemy.ext.asyncio import AsyncConnection

from tokenhub.config import Settings
from tokenhub.errors import GatewayError
from tokenhub.money import MoneyError, format_usd, usd_to_nanos


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


@click.group()
@click.version_option(package_name="tokenhub")
def main() -> None:
    """TokenHub: one OpenAI-compatible API and one key for every model."""


# -- serve --------------------------------------------------------------------------------------

SHUTDOWN_BACKSTOP = 2.0  # seconds aiohttp gives a handler still running after the gateway's drain


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Processes sharing the port (with TOKENHUB_REDIS_URL set, rate limits are shared too).")
@click.option("--access-log/--no-access-log", default=False, help="Log every request (costs some throughput).")
def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the gateway (creates and migrates the database on first start)."""
    from aiohttp import web

    from tokenhub import logs
    from tokenhub.app import create_app

    settings = Settings.from_env()
    logs.configure(settings.log_format)
    click.echo(f"TokenHub: API at http://{host}:{port}/api/v1  (database: {_describe_db(settings)}; workers: {workers})")

    def run(sock: socket.socket | None = None) -> None:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
            pass
        web.run_app(
            create_app(settings),
            host=None if sock else host,
            port=None if sock else port,
            sock=sock,
            access_log=logging.getLogger("aiohttp.access") if access_log else None,
            access_log_class=logs.AccessLogger,
            print=None,
            # The gateway's own drain (TOKENHUB_DRAIN_TIMEOUT) runs first and cuts open streams at its
            # deadline; this only bounds what is left after it (requests that are not relay calls).
            shutdown_timeout=SHUTDOWN_BACKSTOP,
        )

    if workers == 1:
        run()
        return
    from tokenhub.workers import listening_socket, supervise

    supervise(settings, listening_socket(host, port), workers, run)


def _parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        try:
            return parse(value or "")
        except ValueError as err:
            raise click.BadParameter(str(err).removeprefix(f"{param.opts[0]}: ")) from None

    return callback


def _keys(value: str) -> tuple[str, ...] | None:
    keys = tuple(k.strip() for k in value.split(",") if k.strip())
    return keys or None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="TOKENHUB_SIMULATOR_HOST", show_envvar=True)
@click.option("--port", default=9100, show_default=True, type=click.IntRange(1, 65535),
              envvar="TOKENHUB_SIMULATOR_PORT", show_envvar=True)
@click.option("--latency", default=0.0, type=click.FloatRange(min=0), metavar="SECONDS",
              envvar="TOKENHUB_SIMULATOR_LATENCY", show_envvar=True,
              help="Wait this long before answering any request (before the first byte).")
@click.option("--token-rate", type=click.FloatRange(min=0, min_open=True), metavar="TOKENS_PER_S",
              envvar="TOKENHUB_SIMULATOR_TOKEN_RATE", show_envvar=True,
              help="Pace the chat fakes' streams at this many tokens (events) per second [default: unpaced].")
@click.option("--error-rate", "error_rates", metavar="STATUS=FRACTION,...", callback=_parsed(lambda v: _sim().parse_error_rates(v)),
              envvar="TOKENHUB_SIMULATOR_ERROR_RATE", show_envvar=True,
              help="Answer that fraction of API requests with that status, in the protocol's own error format "
                   "(e.g. 503=0.1,429=0.05).")
@click.option("--fault", "faults", metavar="NAME=FRACTION,...", callback=_parsed(lambda v: _sim().parse_faults(v)),
              envvar="TOKENHUB_SIMULATOR_FAULT", show_envvar=True,
              help="Break that fraction of chat generations: reset, stall, truncate, malformed (OpenAI only), hang.")
@click.option("--keys", callback=_parsed(_keys), metavar="KEY,...", envvar="TOKENHUB_SIMULATOR_KEYS", show_envvar=True,
              help="Upstream API keys the fakes accept; AK:SK entries are Kling's [default: accept any].")
@click.option("--seed", type=int, envvar="TOKENHUB_SIMULATOR_SEED", show_envvar=True,
              help="Seed the error and fault draws, to replay the same sequence [default: random].")
@click.option("--access-log/--no-access-log", default=False, help="Log every request.")
def simulate(host: str, port: int, latency: float, token_rate: float | None, error_rates: tuple[tuple[int, float], ...],
             faults: tuple[tuple[str, float], ...], keys: tuple[str, ...] | None, seed: int | None,
             access_log: bool) -> None:
    """Serve fake upstreams for every supported protocol, each under its own path prefix.

    Point channels at them to rehearse failover and load-test without paying a provider;
    ``#fake:`` directives in prompts (e.g. #fake:status=503) work as in the tests.
    """
    from aiohttp import web

    sim = _sim()
    config = sim.SimulatorConfig(latency=latency, token_rate=token_rate, error_rates=error_rates, faults=faults,
                                 keys=keys, seed=seed)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    origin = f"http://[{shown_host}]:{port}" if ":" in shown_host else f"http://{shown_host}:{port}"

    def describe(pairs: tuple[tuple[Any, float], ...]) -> str:
        return ",".join(f"{name}={fraction:g}" for name, fraction in pairs) or "none"

    click.echo(f"TokenHub simulator on {origin}: latency {latency:g}s, token rate "
               f"{f'{token_rate:g}/s' if token_rate else 'unpaced'}, errors {describe(error_rates)}, "
               f"faults {describe(faults)}, seed {'random' if seed is None else seed}, "
               f"keys {'any' if keys is None else 'restricted'}")
    click.echo("")
    table([[m.name, url, ", ".join(m.also_serves) or "-"] for m, (_, url) in zip(sim.MOUNTS, sim.base_urls(origin))],
          ["PROTOCOL", "BASE URL", "ALSO FOR PROVIDERS"])
    click.echo("")
    click.echo("Point channels at it:")
    for command in sim.channel_commands(origin, config):
        click.echo(f"  {command}")
    sys.stdout.flush()
    web.run_app(
        sim.create_app(config),
        host=host,
        port=port,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        print=None,
        shutdown_timeout=1,
    )


def _sim() -> Any:
    from tokenhub.simulator import server

    return server


def _describe_db(settings: Settings) -> str:
    if settings.is_sqlite:
        return settings.database_url.split("///", 1)[-1]
    return settings.database_url.split("@")[-1]


# -- users and keys -------------------------------------------------------------------------------


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
    return {name: values[name] for name in ("rpm", "tpm", "concurrency", "daily_limit", "weekly_limit", "monthly_limit") if values.get(name) is not None}


def describe_limits(record: dict[str, Any]) -> str:
    from tokenhub.limits.policy import Limits

    parts = []
    for name in Limits.__dataclass_fields__:
        value = record.get(name)
        if value is not None:
            label = name.removesuffix("_nanos").replace("_", "-")
            parts.append(f"{label}={'$' + format_usd(value) if name.endswith('_nanos') else value}")
    return ", ".join(parts) or "no limits"


@main.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.argument("email")
@click.option("--password", help="Lets the user log in to the console (at least 8 characters).")
@click.option("--admin", is_flag=True, help="Make the user an operator.")
def user_create(email: str, password: str | None, admin: bool) -> None:
    """Create a user."""
    from tokenhub.accounts.service import create_user

    created = run_db(lambda c, s: create_user(c, email, password=password, is_admin=admin))
    role = "admin" if created["is_admin"] else "user"
    click.echo(f"created {role} {created['email']} (id {created['id']})")


@user.command("limits")
@click.argument("email")
@click.option("--limit", "limit", help="Total spending limit of the account, in USD ('none' clears it).")
@limit_options
def user_limits(email: str, limit: str | None, **limits: Any) -> None:
    """Show or set an account's limits (they apply to all its keys together)."""
    from tokenhub.accounts.service import account_limits, get_user, set_account_limits

    changes = given_limits(limits)
    if limit is not None:
        changes["limit"] = limit

    async def apply(conn: AsyncConnection, settings: Settings) -> dict[str, Any]:
        if changes:
            return await set_account_limits(conn, email, changes)
        return account_limits(await get_user(conn, email))

    current = run_db(apply, write=bool(changes))
    click.echo(f"{current['email']}: {describe_limits(current)}")


@user.command("disable")
@click.argument("email")
def user_disable(email: str) -> None:
    """Disable a user: their keys stop working within a second and their console sessions end."""
    from tokenhub.accounts.service import set_disabled

    changed = run_db(lambda c, s: set_disabled(c, email, True))
    click.echo(f"disabled {changed['email']} (id {changed['id']})")


@user.command("enable")
@click.argument("email")
def user_enable(email: str) -> None:
    """Enable a disabled user again."""
    from tokenhub.accounts.service import set_disabled

    changed = run_db(lambda c, s: set_disabled(c, email, False))
    click.echo(f"enabled {changed['email']} (id {changed['id']})")


@main.group()
def key() -> None:
    """Manage API keys."""


@key.command("create")
@click.argument("email")
@click.option("--name", help="A name to recognise the key by.")
@click.option("--limit", "limit_usd", help="Total spending limit in USD.")
@click.option("--models", help="Comma-separated model ids or patterns the key may use (e.g. openai/*,deepseek/*).")
@click.option("--expires", help="Last day the key works, YYYY-MM-DD (UTC).")
@limit_options
def key_create(email: str, name: str | None, limit_usd: str | None, models: str | None, expires: str | None, **limits: Any) -> None:
    """Create an API key; it is printed once and only its hash is kept."""
    from tokenhub.accounts.service import create_key

    limit = usd_option(limit_usd, "--limit")
    plaintext, created = run_db(
        lambda c, s: create_key(c, email, name=name, limit_nanos=limit, models=models, expires=expires, limits=given_limits(limits))
    )
    click.echo(plaintext)
    click.echo(
        f"key {created['id']} '{created['name']}' for {email} ({describe_limits(created)}); store it now, it cannot be shown again",
        err=True,
    )


@key.command("update")
@click.argument("key_id")
@click.option("--name", help="A new name.")
@click.option("--limit", "limit_usd", help="Total spending limit in USD ('none' clears it).")
@click.option("--models", help="Model ids or patterns the key may use ('none': every model).")
@click.option("--expires", help="Last day the key works, YYYY-MM-DD ('none': never expires).")
@limit_options
def key_update(key_id: str, name: str | None, limit_usd: str | None, models: str | None, expires: str | None, **limits: Any) -> None:
    """Change a key's name, models, expiry or limits; gateways apply it within a second."""
    from tokenhub.accounts.service import update_key

    changes: dict[str, Any] = given_limits(limits)
    for field_name, value in (("name", name), ("limit", limit_usd), ("models", models), ("expires", expires)):
        if value is not None:
            changes[field_name] = value
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    updated = run_db(lambda c, s: update_key(c, key_id, changes))
    click.echo(f"key {updated['id']} '{updated['name']}': {describe_limits(updated)}")


@key.command("list")
@click.argument("email")
def key_list(email: str) -> None:
    """List a user's keys."""
    from tokenhub.accounts.service import list_keys

    keys = run_db(lambda c, s: list_keys(c, email), write=False)
    rows = [
        [
            str(k["id"]),
            k["name"],
            k["prefix"],
            "revoked" if k["revoked_at"] else "active",
            "-" if k["limit_nanos"] is None else f"${format_usd(k['limit_nanos'])}",
            f"${format_usd(k['used_nanos'])}",
            ",".join(k["models"]) if k["models"] else "*",
            last_day(k["expires_at"]) if k["expires_at"] else "-",
        ]
        for k in keys
    ]
    table(rows, ["ID", "NAME", "KEY", "STATE", "LIMIT", "USED", "MODELS", "LAST DAY"])


@key.command("revoke")
@click.argument("key_id")
def key_revoke(key_id: str) -> None:
    """Revoke a key (gateways stop accepting it within a second)."""
    from tokenhub.accounts.service import revoke_key

    revoked = run_db(lambda c, s: revoke_key(c, key_id))
    click.echo(f"revoked key {revoked['id']} '{revoked['name']}'")


# -- credits and ledger -----------------------------------------------------------------------


@main.group()
def credits() -> None:
    """Manage prepaid credits."""


@credits.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("email")
@click.argument("amount_usd")
@click.option("--note", help="Why; kept in the ledger.")
def credits_add(email: str, amount_usd: str, note: str | None) -> None:
    """Add AMOUNT_USD to a user's balance (a negative amount takes credit away)."""
    from tokenhub.billing.service import add_credits

    amount = usd_option(amount_usd, "AMOUNT_USD")
    assert amount is not None
    summary = run_db(lambda c, s: add_credits(c, email, amount, note=note))
    click.echo(f"{summary['email']}: balance ${format_usd(summary['balance_nanos'])}")


@credits.command("show")
@click.argument("email")
def credits_show(email: str) -> None:
    """Show a user's balance, open holds, credits and usage."""
    from tokenhub.billing.service import credits_summary

    s = run_db(lambda c, _: credits_summary(c, email), write=False)
    click.echo(f"user:          {s['email']}")
    click.echo(f"balance:       ${format_usd(s['balance_nanos'])}")
    click.echo(f"held:          ${format_usd(s['held_nanos'])}")
    click.echo(f"total credits: ${format_usd(s['total_credits_nanos'])}")
    click.echo(f"total usage:   ${format_usd(s['total_usage_nanos'])}")


@main.group()
def ledger() -> None:
    """Inspect the ledger."""


@ledger.command("check")
def ledger_check() -> None:
    """Verify that every balance equals the sum of its ledger entries (exit 1 if not)."""
    from tokenhub.billing.service import check_ledger

    report = run_db(lambda c, s: check_ledger(c), write=False)
    for problem in report.problems:
        click.echo(f"MISMATCH {problem}")
    if not report.ok:
        click.echo(f"ledger check FAILED: {len(report.problems)} problems", err=True)
        sys.exit(1)
    click.echo(f"ledger OK: {report.users_checked} balances and {report.keys_checked} keys match their entries")


# -- channels -----------------------------------------------------------------------------------


@main.group()
def channel() -> None:
    """Manage upstream channels."""


@channel.command("add")
@click.argument("provider")
@click.option("--base-url", help="The prefix the vendor's SDK takes (default: the vendor's official one).")
@click.option("--api-key", required=True, help="The upstream key (kling: ACCESS_KEY:SECRET_KEY). Stored encrypted.")
@click.option("--name", help="A unique name (default: the provider's name).")
@click.option("--models", help="ID[=UPSTREAM_ID],... (default: every catalog model of this provider).")
@click.option("--priority", default=0, show_default=True, type=int, help="Higher is tried first.")
@click.option("--weight", default=1, show_default=True, type=int, help="Share of traffic among equal priorities.")
@click.option("--connect-timeout", help="Seconds to open a connection (default: TOKENHUB_CONNECT_TIMEOUT, 10).")
@click.option("--first-byte-timeout", help="Seconds until the response headers (default: TOKENHUB_FIRST_BYTE_TIMEOUT, 300).")
@click.option("--idle-timeout", help="Longest silence between two chunks, in seconds (default: TOKENHUB_IDLE_TIMEOUT, 300).")
def channel_add(
    provider: str, base_url: str | None, api_key: str, name: str | None, models: str | None, priority: int, weight: int,
    connect_timeout: str | None, first_byte_timeout: str | None, idle_timeout: str | None,
) -> None:  # fmt: skip
    """Add an upstream channel."""
    from tokenhub.catalog.service import load_catalog
    from tokenhub.channels.service import add_channel
    from tokenhub.secrets_box import SecretBox, load_or_create_secret

    async def add(conn: AsyncConnection, settings: Settings) -> dict[str, Any]:
        box = SecretBox(load_or_create_secret(settings.home, settings.secret_key))
        return await add_channel(
            conn, box, await load_catalog(conn), provider=provider, api_key=api_key, base_url=base_url,
            name=name, models=models, priority=priority, weight=weight,
            timeouts={"connect_timeout": connect_timeout, "first_byte_timeout": first_byte_timeout, "idle_timeout": idle_timeout},
        )

    created = run_db(add)
    served = ", ".join(created["models"]) if created["models"] else f"every {provider} model in the catalog"
    click.echo(f"added channel {created['id']} '{created['name']}' -> {created['base_url']} serving {served}")


@channel.command("list")
def channel_list() -> None:
    """List channels (upstream keys are never shown)."""
    from tokenhub.channels.service import list_channels

    chans = run_db(lambda c, s: list_channels(c), write=False)
    rows = [
        [
            str(ch["id"]),
            ch["name"],
            ch["provider"],
            ch["base_url"],
            ",".join(f"{k}={v}" if k.split("/", 1)[-1] != v else k for k, v in ch["models"].items()) if ch["models"] else "*",
            str(ch["priority"]),
            str(ch["weight"]),
            "enabled" if ch["enabled"] else "disabled",
        ]
        for ch in chans
    ]
    table(rows, ["ID", "NAME", "PROVIDER", "BASE URL", "MODELS", "PRIORITY", "WEIGHT", "STATE"])


@channel.command("test")
@click.argument("name_or_id", required=False)
def channel_test(name_or_id: str | None) -> None:
    """Send each channel (or one) the smallest request it takes; print latency and answer (exit 1 if any fails)."""
    from tokenhub.channels.probe import probe_all
    from tokenhub.directory import Directory
    from tokenhub.secrets_box import SecretBox, load_or_create_secret
    from tokenhub.storage import migrate
    from tokenhub.storage.engine import create_engine

    settings = Settings.from_env()

    async def run() -> list[Any]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            await migrate.upgrade(engine)
            directory = Directory(engine, SecretBox(load_or_create_secret(settings.home, settings.secret_key)), 1.0)
            await directory.load()
            chans = directory.channels()
            if name_or_id:
                chans = [c for c in chans if c.name == name_or_id or str(c.id) == name_or_id]
                if not chans:
                    fail(f"no enabled channel '{name_or_id}'")
            return await probe_all(directory, chans)
        finally:
            await engine.dispose()

    results = asyncio.run(run())
    table(
        [[r.channel, r.model or "-", "ok" if r.ok else "FAILED", f"{r.latency_ms} ms" if r.latency_ms is not None else "-", r.detail]
         for r in results],
        ["CHANNEL", "MODEL", "RESULT", "LATENCY", "DETAIL"],
    )
    if not all(r.ok for r in results):
        sys.exit(1)


@channel.command("remove")
@click.argument("name_or_id")
def channel_remove(name_or_id: str) -> None:
    """Remove a channel."""
    from tokenhub.channels.service import remove_channel

    removed = run_db(lambda c, s: remove_channel(c, name_or_id))
    click.echo(f"removed channel {removed['id']} '{removed['name']}'")


# -- models -----------------------------------------------------------------------------------


@main.group()
def model() -> None:
    """Change prices and add models (the shipped catalog stays as it is)."""


@model.command("set")
@click.argument("model_id")
@click.option("--input-price", help="USD per 1M input tokens.")
@click.option("--output-price", help="USD per 1M output tokens.")
@click.option("--cached-input-price", help="USD per 1M cached input tokens.")
@click.option("--disable", "enabled", flag_value=False, default=None, help="Hide the model and refuse requests for it.")
@click.option("--enable", "enabled", flag_value=True, help="Serve the model again.")
def model_set(model_id: str, input_price: str | None, output_price: str | None, cached_input_price: str | None, enabled: bool | None) -> None:
    """Change a model's prices or availability."""
    from tokenhub.catalog.service import set_model

    prices = {
        "input_price": usd_option(input_price, "--input-price"),
        "output_price": usd_option(output_price, "--output-price"),
        "cached_input_price": usd_option(cached_input_price, "--cached-input-price"),
    }
    changed = run_db(lambda c, s: set_model(c, model_id, enabled=enabled, **prices))
    _print_model(changed)


@model.command("add")
@click.argument("model_id")
@click.option("--provider", required=True, help="The channel provider that serves it (e.g. openai-compatible).")
@click.option("--upstream-id", help="The id the upstream takes (default: the part after the slash).")
@click.option("--name", help="Display name.")
@click.option("--input-price", help="USD per 1M input tokens.")
@click.option("--output-price", help="USD per 1M output tokens.")
@click.option("--cached-input-price", help="USD per 1M cached input tokens.")
@click.option("--context", "context_length", type=int, help="Context length in tokens.")
@click.option("--max-output", "max_output_tokens", type=int, help="Most output tokens per request.")
def model_add(
    model_id: str, provider: str, upstream_id: str | None, name: str | None, input_price: str | None,
    output_price: str | None, cached_input_price: str | None, context_length: int | None, max_output_tokens: int | None,
) -> None:
    """Add a chat model to the catalog."""
    from tokenhub.catalog.service import add_model

    prices = {
        "input_price": usd_option(input_price, "--input-price"),
        "output_price": usd_option(output_price, "--output-price"),
        "cached_input_price": usd_option(cached_input_price, "--cached-input-price"),
    }
    added = run_db(
        lambda c, s: add_model(
            c, model_id, provider=provider, upstream_id=upstream_id, name=name,
            context_length=context_length, max_output_tokens=max_output_tokens, **prices,
        )
    )
    _print_model(added)


def _print_model(m: Any) -> None:
    p = m.pricing
    cached = f", cached input ${format_usd(p.cached_input)}" if p.cached_input is not None else ""
    state = "enabled" if m.enabled else "disabled"
    click.echo(
        f"{m.id} ({state}): input ${format_usd(p.input)}, output ${format_usd(p.output)}{cached} per 1M tokens; "
        f"upstream id {m.upstream_id}"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
