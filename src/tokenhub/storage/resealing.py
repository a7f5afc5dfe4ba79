"""Reseal the secrets earlier releases stored as Fernet tokens (``tokenhub.secrets_box``).

Run at every start; after the first one it finds nothing. Each value is rewritten only if it is still
the one read, so processes starting together do the work once. A value that does not open under this
process's key is left as it is: the directory names the failure when it loads that channel.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, select, update

from tokenhub.secrets_box import SEALED, SecretBox
from tokenhub.storage import AsyncConnection
from tokenhub.storage.tables import channels, users

log = logging.getLogger("tokenhub")

SEALED_COLUMNS: tuple[Column, ...] = (channels.c.api_key_enc, users.c.totp_secret)


async def reseal(conn: AsyncConnection, box: SecretBox) -> int:
    """Rewrite every value not sealed by this release; returns how many were."""
    resealed = 0
    for column in SEALED_COLUMNS:
        table = column.table
        rows = await conn.execute(select(table.c.id, column).where(column.is_not(None), column.not_like(f"{SEALED}%")))
        for row_id, token in rows.all():
            try:
                plaintext = box.decrypt(token)
            except RuntimeError:
                log.warning("%s %s: a stored secret does not open with this TOKENHUB_SECRET_KEY; left as it is", table.name, row_id)
                continue
            done = await conn.execute(
                update(table).where(table.c.id == row_id, column == token).values({column.name: box.encrypt(plaintext)})
            )
            resealed += done.rowcount
    if resealed:
        log.info("resealed %d stored secrets (v2: XSalsa20-Poly1305)", resealed)
    return resealed
