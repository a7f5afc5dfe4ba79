"""Two-factor sign-in: TOTP (RFC 6238: 6 digits, 30-second steps, SHA-1, as every authenticator app reads it)
and single-use recovery codes.

The TOTP secret is stored encrypted with the gateway's ``SecretBox`` (like upstream keys) in ``users.totp_secret``;
``begin`` stores a new one with ``totp_enabled_at`` NULL, ``enable`` puts it in force once the user has typed a
code from it. A code is accepted in the current step or the one either side (``VALID_WINDOW``), and only once:
``users.totp_last_step`` holds the last accepted step and one conditional UPDATE refuses any step not after it,
so two requests with the same code cannot both pass.

Recovery codes (``RECOVERY_CODES`` of them) are shown once; ``recovery_codes`` keeps their SHA-256 only, and using
one marks it used in one conditional UPDATE.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import pyotp
from sqlalchemy import delete, func, insert, select, update

from tokenhub.errors import InvalidRequest, NotFound
from tokenhub.secrets_box import SecretBox
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import utc_now
from tokenhub.storage.tables import recovery_codes, users

ISSUER = "TokenHub"
STEP_SECONDS = 30
VALID_WINDOW = 1  # steps either side of now: a code typed just before its step ended still works
RECOVERY_CODES = 10
_DIGITS = re.compile(r"^[0-9]{6}$")
_RECOVERY = re.compile(r"^[0-9a-f]{16}$")


def normalize(code: str) -> str:
    """What the user typed, without spaces or dashes, lower-case (``123 456``, ``ABCD-1234-...``)."""
    return re.sub(r"[\s-]", "", code or "").lower()[:64]


def provisioning_uri(secret: str, email: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


async def _row(conn: AsyncConnection, user_id: int) -> Any:
    row = (
        await conn.execute(
            select(users.c.id, users.c.totp_secret, users.c.totp_enabled_at, users.c.totp_last_step).where(users.c.id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no user {user_id}", code="user_not_found")
    return row


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code is ``code`` (within ``VALID_WINDOW``), or None."""
    if not _DIGITS.match(code):
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):  # every step compared: no early exit
            found = step
    return found


async def is_enabled(conn: AsyncConnection, user_id: int) -> bool:
    return (await _row(conn, user_id)).totp_enabled_at is not None


async def begin(conn: AsyncConnection, box: SecretBox, user_id: int) -> str:
    """A new secret for an account without 2FA in force, stored encrypted (not yet in force); returns it to show."""
    secret = pyotp.random_base32()
    result = await conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.totp_enabled_at.is_(None))
        .values(totp_secret=box.encrypt(secret), totp_last_step=None)
    )
    if result.rowcount != 1:
        await _row(conn, user_id)  # NotFound for an unknown user
        raise InvalidRequest("two-factor sign-in is already on", code="two_factor_already_on")
    return secret


async def pending_secret(conn: AsyncConnection, box: SecretBox, user_id: int) -> str | None:
    """The secret ``begin`` made, while it is not yet in force (to show the QR code again)."""
    row = await _row(conn, user_id)
    if row.totp_enabled_at is not None or not row.totp_secret:
        return None
    return box.decrypt(row.totp_secret)


async def enable(conn: AsyncConnection, box: SecretBox, user_id: int, code: str) -> list[str] | None:
    """Puts the pending secret in force if ``code`` is one of its codes: returns fresh recovery codes (to show
    once), or None for a wrong code (nothing changes)."""
    row = await _row(conn, user_id)
    if row.totp_enabled_at is not None:
        raise InvalidRequest("two-factor sign-in is already on", code="two_factor_already_on")
    if not row.totp_secret:
        raise InvalidRequest("two-factor sign-in has not been started", code="two_factor_not_started")
    step = _matching_step(box.decrypt(row.totp_secret), normalize(code))
    if step is None:
        return None
    result = await conn.execute(
        update(users)
        .where(users.c.id == user_id, users.c.totp_enabled_at.is_(None), users.c.totp_secret == row.totp_secret)
        .values(totp_enabled_at=utc_now(), totp_last_step=step)
    )
    if result.rowcount != 1:
        return None  # turned on (or restarted) meanwhile by another request
    return await regenerate_codes(conn, user_id)


async def verify(conn: AsyncConnection, box: SecretBox, user_id: int, code: str) -> bool:
    """A current TOTP code not used before, or an unused recovery code (then used up). False when 2FA is off."""
    row = await _row(conn, user_id)
    if row.totp_enabled_at is None or not row.totp_secret:
        return False
    typed = normalize(code)
    if _DIGITS.match(typed):
        step = _matching_step(box.decrypt(row.totp_secret), typed)
        if step is None:
            return False
        result = await conn.execute(
            update(users)
            .where(
                users.c.id == user_id,
                users.c.totp_enabled_at.is_not(None),
                (users.c.totp_last_step.is_(None)) | (users.c.totp_last_step < step),
            )
            .values(totp_last_step=step)
        )
        return result.rowcount == 1
    if _RECOVERY.match(typed):
        result = await conn.execute(
            update(recovery_codes)
            .where(
                recovery_codes.c.user_id == user_id,
                recovery_codes.c.code_hash == _hash(typed),
                recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=utc_now())
        )
        return result.rowcount == 1
    return False


async def disable(conn: AsyncConnection, user_id: int) -> None:
    """Two-factor off: the secret, its state and every recovery code are gone."""
    await _row(conn, user_id)
    await conn.execute(
        update(users).where(users.c.id == user_id).values(totp_secret=None, totp_enabled_at=None, totp_last_step=None)
    )
    await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))


async def regenerate_codes(conn: AsyncConnection, user_id: int) -> list[str]:
    """``RECOVERY_CODES`` new codes (``xxxx-xxxx-xxxx-xxxx``: 64 random bits, so that their SHA-256 cannot be
    reversed by trying them all), replacing every earlier one; only their hashes are kept."""
    codes = [secrets.token_hex(8) for _ in range(RECOVERY_CODES)]
    await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    await conn.execute(insert(recovery_codes), [{"user_id": user_id, "code_hash": _hash(code)} for code in codes])
    return ["-".join(code[i : i + 4] for i in range(0, 16, 4)) for code in codes]


async def codes_left(conn: AsyncConnection, user_id: int) -> int:
    query = (
        select(func.count())
        .select_from(recovery_codes)
        .where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
    )
    return int(await conn.scalar(query) or 0)


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
