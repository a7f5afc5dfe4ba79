"""The ``tokenhub`` command: serve the gateway, and the operator's commands.

Every operator command works directly on the configured database (TOKENHUB_DATABASE_URL, or the
embedded SQLite file under TOKENHUB_HOME) through the same service layer as the admin API, and
running gateways pick the change up within a second. Bad input prints ``error: …`` on stderr and
exits with status 1.

    serve.py      tokenhub serve, tokenhub simulate
    accounts.py   tokenhub user, tokenhub key
    credits.py    tokenhub credits, tokenhub ledger
    upstreams.py  tokenhub channel, tokenhub model
    common.py     what they share (one database transaction per command, USD options, tables)
"""

from __future__ import annotations

import importlib

import click

# Each command's module, imported when the command runs (or --help lists them): the gateway's process
# loads ``serve`` alone, not the operator's commands (idle memory: bench/README.md).
COMMANDS = {
    "serve": "serve", "simulate": "serve", "user": "accounts", "key": "accounts", "credits": "credits",
    "ledger": "credits", "channel": "upstreams", "model": "upstreams", "invite": "invites",
}  # fmt: skip


class _Commands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None:
            return None
        return getattr(importlib.import_module(f"tokenhub.cli.{module}"), name)


@click.group(cls=_Commands)
@click.version_option(package_name="tokenhub")
def main() -> None:
    """TokenHub: one OpenAI-compatible API and one key for every model."""


if __name__ == "__main__":  # pragma: no cover
    main()
