"""Single-use links: a password reset, an email verification, a sign-up invite, a sign-in's ``state``.

A link carries a random token (32 bytes, URL-safe); the ``account_links`` table keeps only its SHA-256,
its purpose, whom it is for and until when. ``use`` spends it in one conditional UPDATE, so two
browsers (or two processes) presenting the same link cannot both succeed, and an expired or spent
link is refused exactly like an unknown one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import as_utc, utc_now
from tokenhub.storage.tables import account_links, users

PURPOSES = ("reset", "verify", "invite", "signin")
LIFETIMES = {
    "reset": timedelta(hours=1),
    "verify": timedelta(days=3),
    "invite": timedelta(days=14),
    "signin": timedelta(minutes=10),  # a sign-in provider round trip
}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_link(
    conn: AsyncConnection,
    purpose: str,
    *,
    user_id: int | None = None,
    email: str | None = None,
    note: str | None = None,
    lifetime: timedelta | None = None,
) -> str:
    """A new link's token (shown or sent once; only its hash is stored). Expired links of any kind are dropped."""
    assert purpose in PURPOSES, purpose
    token = secrets.token_urlsafe(32)
    now = utc_now()
    await conn.execute(delete(account_links).where(account_links.c.expires_at <= now - timedelta(days=1)))
    await conn.execute(
        insert(account_links).values(
            id_hash=token_hash(token),
            purpose=purpose,
            user_id=user_id,
            email=email,
            note=note,
            created_at=now,
            expires_at=now + (lifetime or LIFETIMES[purpose]),
        )
    )
    return token


async def peek_link(conn: AsyncConnection, purpose: str, token: str) -> Row[Any] | None:
    """The link, if it is of this purpose, unspent and unexpired — without spending it (a page that shows a form)."""
    if not token or len(token) > 200:
        return None
    return (
        await conn.execute(
            select(account_links).where(
                account_links.c.id_hash == token_hash(token),
                account_links.c.purpose == purpose,
                account_links.c.used_at.is_(None),
                account_links.c.expires_at > utc_now(),
            )
        )
    ).first()


async def use_link(conn: AsyncConnection, purpose: str, token: str, *, used_by: int | None = None) -> Row[Any] | None:
    """Spend the link: its row, or None when it is unknown, of another purpose, spent or expired. Exactly one
    caller can spend a link; the caller's transaction makes it final."""
    if not token or len(token) > 200:
        return None
    result = await conn.execute(
        update(account_links)
        .where(
            account_links.c.id_hash == token_hash(token),
            account_links.c.purpose == purpose,
            account_links.c.used_at.is_(None),
            account_links.c.expires_at > utc_now(),
        )
        .values(used_at=utc_now(), used_by=used_by)
        .returning(*account_links.c)
    )
    return result.first()


async def drop_links(conn: AsyncConnection, purpose: str, user_id: int) -> None:
    """Every unspent link of this purpose for the account (a new password makes older reset links useless)."""
    await conn.execute(
        delete(account_links).where(
            account_links.c.purpose == purpose, account_links.c.user_id == user_id, account_links.c.used_at.is_(None)
        )
    )


async def list_invites(conn: AsyncConnection, *, limit: int = 200) -> list[dict[str, Any]]:
    """The newest invites: who made each, its note, and whether it is open, used (by whom) or expired."""
    maker, invitee = users.alias("maker"), users.alias("invitee")
    rows = await conn.execute(
        select(account_links, maker.c.email.label("made_by"), invitee.c.email.label("used_by_email"))
        .select_from(
            account_links.outerjoin(maker, maker.c.id == account_links.c.user_id).outerjoin(
                invitee, invitee.c.id == account_links.c.used_by
            )
        )
        .where(account_links.c.purpose == "invite")
        .order_by(account_links.c.created_at.desc())
        .limit(limit)
    )
    now = utc_now()
    return [
        {
            "id": row.id_hash,
            "note": row.note or "",
            "made_by": row.made_by or "",
            "created_at": as_utc(row.created_at),
            "expires_at": as_utc(row.expires_at),
            "used_at": as_utc(row.used_at) if row.used_at else None,
            "used_by": row.used_by_email or "",
            "state": "used" if row.used_at else ("expired" if as_utc(row.expires_at) <= now else "open"),
        }
        for row in rows
    ]


async def withdraw_invite(conn: AsyncConnection, invite_id: str) -> bool:
    """Delete an unspent invite (by its row id, the token's hash): True if there was one."""
    result = await conn.execute(
        delete(account_links).where(
            account_links.c.id_hash == invite_id, account_links.c.purpose == "invite", account_links.c.used_at.is_(None)
        )
    )
    return bool(result.rowcount)
