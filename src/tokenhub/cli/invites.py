"""``tokenhub invite``: single-use sign-up links for ``TOKENHUB_SIGNUP=invite`` (as on the console's Invites page)."""

from __future__ import annotations

import click

from tokenhub.cli.common import run_db, table

LOCAL_CONSOLE = "http://127.0.0.1:8000"  # the link's base when TOKENHUB_PUBLIC_URL is unset


@click.group()
def invite() -> None:
    """Make and list sign-up invites."""


@invite.command("create")
@click.option("--note", help="Whom it is for (shown to operators only).")
def invite_create(note: str | None) -> None:
    """Print a new single-use sign-up link (shown once; it expires in 14 days)."""
    from tokenhub.accounts.links import create_link

    async def make(conn, settings) -> str:  # type: ignore[no-untyped-def]
        token = await create_link(conn, "invite", note=" ".join((note or "").split())[:200] or None)
        return f"{settings.public_url or LOCAL_CONSOLE}/signup?invite={token}"

    click.echo(run_db(make))


@invite.command("list")
def invite_list() -> None:
    """The newest invites and what became of them."""
    from tokenhub.accounts.links import list_invites

    rows = run_db(lambda c, s: list_invites(c), write=False)
    table(
        [[r["created_at"].strftime("%Y-%m-%d %H:%M"), r["state"], r["used_by"], r["expires_at"].strftime("%Y-%m-%d"), r["note"]]
         for r in rows],
        ["created (UTC)", "state", "used by", "expires", "note"],
    )  # fmt: skip
