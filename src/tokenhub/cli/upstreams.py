"""``tokenhub channel`` and ``tokenhub model``: upstream channels (add, list, test, remove) and the catalog's prices."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from tokenhub.cli.common import fail, run_db, table, usd_option
from tokenhub.config import Settings
from tokenhub.money import format_usd
from tokenhub.storage import AsyncConnection


@click.group()
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
            conn,
            box,
            await load_catalog(conn),
            provider=provider,
            api_key=api_key,
            base_url=base_url,
            name=name,
            models=models,
            priority=priority,
            weight=weight,
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
        [
            [
                r.channel,
                r.model or "-",
                "ok" if r.ok else "FAILED",
                f"{r.latency_ms} ms" if r.latency_ms is not None else "-",
                r.detail,
            ]
            for r in results
        ],
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


@click.group()
def model() -> None:
    """Change prices and add models (the shipped catalog stays as it is)."""


@model.command("set")
@click.argument("model_id")
@click.option("--input-price", help="USD per 1M input tokens.")
@click.option("--output-price", help="USD per 1M output tokens.")
@click.option("--cached-input-price", help="USD per 1M cached input tokens.")
@click.option("--disable", "enabled", flag_value=False, default=None, help="Hide the model and refuse requests for it.")
@click.option("--enable", "enabled", flag_value=True, help="Serve the model again.")
def model_set(
    model_id: str, input_price: str | None, output_price: str | None, cached_input_price: str | None, enabled: bool | None
) -> None:
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
    model_id: str,
    provider: str,
    upstream_id: str | None,
    name: str | None,
    input_price: str | None,
    output_price: str | None,
    cached_input_price: str | None,
    context_length: int | None,
    max_output_tokens: int | None,
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
            c,
            model_id,
            provider=provider,
            upstream_id=upstream_id,
            name=name,
            context_length=context_length,
            max_output_tokens=max_output_tokens,
            **prices,
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
