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

import click

from tokenhub.cli.accounts import key, user
from tokenhub.cli.credits import credits, ledger
from tokenhub.cli.invites import invite
from tokenhub.cli.serve import serve, simulate
from tokenhub.cli.upstreams import channel, model


@click.group()
@click.version_option(package_name="tokenhub")
def main() -> None:
    """TokenHub: one OpenAI-compatible API and one key for every model."""


for command in (serve, simulate, user, key, credits, ledger, channel, model, invite):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
