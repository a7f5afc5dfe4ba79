"""``tokenhub user`` and ``tokenhub key``: accounts, their limits, and their API keys."""

from __future__ import annotations

from typing import Any

import click

from tokenhub.cli.common import describe_limits, given_limits, last_day, limit_options, run_db, table, usd_option
from tokenhub.config import Settings
from tokenhub.money import format_usd
from tokenhub.storage import AsyncConnection


@click.group()
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


@user.command("reset-link")
@click.argument("email")
def user_reset_link(email: str) -> None:
    """Print a single-use password-reset link (valid an hour) to pass on to the user yourself.

    For servers without TOKENHUB_SMTP_URL. The link opens TOKENHUB_PUBLIC_URL (http://127.0.0.1:8000 when unset).
    """
    from tokenhub.accounts import recovery
    from tokenhub.accounts.service import get_user
    from tokenhub.errors import InvalidRequest

    async def make(conn: AsyncConnection, settings: Settings) -> tuple[str, str]:
        row = await get_user(conn, email)
        if row.disabled:
            raise InvalidRequest(f"{row.email} is disabled: enable the account first (tokenhub user enable)")
        token = await recovery.create_reset_link(conn, row)
        return row.email, recovery.reset_url(settings.public_url or "http://127.0.0.1:8000", token)

    address, link = run_db(make)
    minutes = int(recovery.RESET_LIFETIME.total_seconds() // 60)
    click.echo(f"password reset link for {address} (single use, valid {minutes} minutes):", err=True)
    click.echo(link)


@click.group()
def key() -> None:
    """Manage API keys."""


@key.command("create")
@click.argument("email")
@click.option("--name", help="A name to recognise the key by.")
@click.option("--limit", "limit_usd", help="Total spending limit in USD.")
@click.option("--models", help="Comma-separated model ids or patterns the key may use (e.g. openai/*,deepseek/*).")
@click.option("--expires", help="Last day the key works, YYYY-MM-DD (UTC).")
@limit_options
def key_create(
    email: str, name: str | None, limit_usd: str | None, models: str | None, expires: str | None, **limits: Any
) -> None:
    """Create an API key; it is printed once and only its hash is kept."""
    from tokenhub.accounts.service import create_key

    limit = usd_option(limit_usd, "--limit")
    plaintext, created = run_db(
        lambda c, s: create_key(
            c, email, name=name, limit_nanos=limit, models=models, expires=expires, limits=given_limits(limits)
        )
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
def key_update(
    key_id: str, name: str | None, limit_usd: str | None, models: str | None, expires: str | None, **limits: Any
) -> None:
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


@user.command("2fa-off")
@click.argument("email")
def user_two_factor_off(email: str) -> None:
    """Turn off a user's two-factor sign-in (a lost authenticator and lost recovery codes), after checking who
    asks by other means. The user signs in with the password alone and can turn it on again."""
    from tokenhub.accounts import two_factor
    from tokenhub.accounts.service import get_user

    async def off(conn: AsyncConnection, settings: Settings) -> tuple[str, bool]:
        row = await get_user(conn, email)
        was_on = row.totp_enabled_at is not None
        await two_factor.disable(conn, row.id)
        return row.email, was_on

    shown, was_on = run_db(off)
    click.echo(f"two-factor sign-in turned off for {shown}" if was_on else f"{shown} had no two-factor sign-in")
