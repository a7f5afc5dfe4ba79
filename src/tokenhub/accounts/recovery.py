"""A way back in and a proven address: password-reset links and email-verification links.

Both are single-use ``account_links`` (``accounts/links.py``): a reset link lives an hour, a verification
link three days. These functions are the whole of the rules, shared by the console and the CLI
(``tokenhub user reset-link``); the console only renders and sends.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import update
from sqlalchemy.engine import Row

from tokenhub.accounts import links
from tokenhub.accounts import service as accounts
from tokenhub.accounts.sessions import end_all_sessions
from tokenhub.errors import InvalidRequest, NotFound
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import users

RESET_LIFETIME = links.LIFETIMES["reset"]
VERIFY_LIFETIME = links.LIFETIMES["verify"]


def reset_url(base: str, token: str) -> str:
    """The page a reset link opens (``base``: ``TOKENHUB_PUBLIC_URL`` or the console's address)."""
    return f"{base.rstrip('/')}/password/reset?token={quote(token, safe='')}"


def verify_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/verify?token={quote(token, safe='')}"


async def account_for_reset(conn: AsyncConnection, email: str) -> Row[Any] | None:
    """The enabled account with this address, or None (unknown, malformed or disabled: no link is made)."""
    email = (email or "").strip().lower()
    if not email or email.isdigit() or len(email) > 320:
        return None
    try:
        row = await accounts.get_user(conn, email)
    except NotFound:
        return None
    return None if row.disabled else row


async def create_reset_link(conn: AsyncConnection, user: Row[Any]) -> str:
    """A single-use password-reset token for the account (valid an hour)."""
    return await links.create_link(conn, "reset", user_id=user.id, email=user.email)


async def reset_link_valid(conn: AsyncConnection, token: str) -> bool:
    """Whether the reset link can still be used, without spending it (mail scanners fetch links)."""
    link = await links.peek_link(conn, "reset", token)
    return link is not None and await _enabled(conn, link.user_id)


async def reset_password(conn: AsyncConnection, token: str, password: str) -> int | None:
    """Spend the reset link and set the password, in the caller's transaction: the account's id, or None when the
    link is unknown, spent, expired or its account is disabled. The password is checked first (a refused password
    leaves the link usable: the transaction rolls back). Every console session of the account ends (the epoch is
    bumped and the rows deleted) and its other reset links are dropped."""
    if len(password or "") < accounts.MIN_PASSWORD:
        raise InvalidRequest(f"the password must have at least {accounts.MIN_PASSWORD} characters", param="password")
    link = await links.use_link(conn, "reset", token)
    if link is None or link.user_id is None or not await _enabled(conn, link.user_id):
        return None
    await accounts.set_password(conn, int(link.user_id), password)
    await end_all_sessions(conn, int(link.user_id))
    await links.drop_links(conn, "reset", int(link.user_id))
    return int(link.user_id)


async def create_verify_link(conn: AsyncConnection, user_id: int, email: str) -> str:
    """A single-use link proving ``email`` belongs to the account (valid three days)."""
    return await links.create_link(conn, "verify", user_id=user_id, email=email)


async def verify_email(conn: AsyncConnection, token: str) -> int | None:
    """Spend a verification link: the account's id once its address is marked verified, or None when the link is
    unknown, spent or expired, or the account's address is no longer the one the link was sent to."""
    link = await links.use_link(conn, "verify", token)
    if link is None or link.user_id is None:
        return None
    try:
        user = await accounts.get_user(conn, int(link.user_id))
    except NotFound:
        return None
    if user.email != link.email:
        return None
    if user.email_verified_at is None:
        await conn.execute(update(users).where(users.c.id == user.id).values(email_verified_at=utc_now()))
    await links.drop_links(conn, "verify", user.id)
    return int(user.id)


async def _enabled(conn: AsyncConnection, user_id: int | None) -> bool:
    if user_id is None:
        return False
    try:
        return not (await accounts.get_user(conn, int(user_id))).disabled
    except NotFound:
        return False
