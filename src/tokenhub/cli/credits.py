"""``tokenhub credits`` and ``tokenhub ledger``: adding credits, balances, and checking the ledger."""

from __future__ import annotations

import sys

import click

from tokenhub.cli.common import run_db, usd_option
from tokenhub.money import format_usd


@click.group()
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


@click.group()
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
