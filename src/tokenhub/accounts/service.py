"""Users and API keys. Functions take an open connection; the caller owns the transaction."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from tokenhub.accounts.secrets import display_prefix, hash_api_key, hash_password, new_api_key
from tokenhub.digits import whole_number
from tokenhub.errors import Conflict, InvalidRequest, NotFound
from tokenhub.limits.policy import RATE_FIELDS, Limits, cleared, parse_changes
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import as_utc, bump_config_version, utc_now
from tokenhub.storage.tables import api_keys, users

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MODEL_PATTERN_RE = re.compile(r"^[A-Za-z0-9_.:/*?\[\]-]+$")
MIN_PASSWORD = 8
LIMIT_FIELDS = (*RATE_FIELDS, "daily_limit_nanos", "weekly_limit_nanos", "monthly_limit_nanos")  # besides limit_nanos


def normalize_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > 320 or not EMAIL_RE.match(email):
        raise InvalidRequest(f"'{email}' is not a valid email address", param="email")
    return email


async def create_user(
    conn: AsyncConnection, email: str, *, password: str | None = None, is_admin: bool = False, email_verified: bool = True
) -> dict[str, Any]:
    """A new account. ``email_verified``: an operator (CLI, admin API) vouches for the address; the console's
    sign-up passes False until the emailed link is followed."""
    email = normalize_email(email)
    if password is not None and len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"the password must have at least {MIN_PASSWORD} characters", param="password")
    try:
        async with conn.begin_nested():
            result = await conn.execute(
                insert(users)
                .values(
                    email=email,
                    password_hash=hash_password(password) if password else None,
                    is_admin=is_admin,
                    disabled=False,
                    balance=0,
                    created_at=(now := utc_now()),
                    email_verified_at=now if email_verified else None,
                )
                .returning(users.c.id)
            )
    except IntegrityError:
        raise Conflict(f"a user with email {email} already exists", code="user_exists", param="email") from None
    await bump_config_version(conn)
    return user_dict(await get_user(conn, result.scalar_one()))


async def set_password(conn: AsyncConnection, user_ref: str | int, password: str) -> int:
    """Replace a user's password; bumps ``session_epoch`` so console sessions made before end. Returns the new epoch."""
    if len(password or "") < MIN_PASSWORD:
        raise InvalidRequest(f"the password must have at least {MIN_PASSWORD} characters", param="password")
    user = await get_user(conn, user_ref)
    result = await conn.execute(
        update(users)
        .where(users.c.id == user.id)
        .values(password_hash=hash_password(password), session_epoch=users.c.session_epoch + 1)
        .returning(users.c.session_epoch)
    )
    return int(result.scalar_one())


async def get_user(conn: AsyncConnection, ref: str | int) -> Row[Any]:
    """A user by id or email."""
    user_id = ref if isinstance(ref, int) else whole_number(ref)
    if user_id is not None:
        query = select(users).where(users.c.id == user_id)
    else:
        query = select(users).where(users.c.email == str(ref).strip().lower())
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no user {ref}", code="user_not_found")
    return row


async def count_admins(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(func.count()).select_from(users).where(users.c.is_admin)) or 0)


async def list_users(conn: AsyncConnection, query: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    stmt = select(users).order_by(users.c.id).limit(min(max(limit, 1), 1000))
    if query:
        escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(users.c.email.like(f"%{escaped}%", escape="\\"))
    return [user_dict(row) for row in await conn.execute(stmt)]


async def set_disabled(conn: AsyncConnection, user_ref: str | int, disabled: bool, *, acting_user_id: int | None = None) -> dict[str, Any]:
    """Disable or enable a user. A disabled user's keys stop working and their console sessions end.

    ``acting_user_id`` is the operator making the change (None from the CLI): nobody disables themselves,
    and the last enabled admin is never disabled.
    """
    user = await get_user(conn, user_ref)
    if disabled and not user.disabled:
        if acting_user_id == user.id:
            raise InvalidRequest("you cannot disable your own account", code="own_account")
        if user.is_admin:
            await _keep_an_admin(conn, user.id)
    return await _set_flags(conn, user, disabled=disabled)


async def set_admin(conn: AsyncConnection, user_ref: str | int, is_admin: bool, *, acting_user_id: int | None = None) -> dict[str, Any]:
    """Make a user an operator, or take that away (never from yourself, never from the last enabled admin)."""
    user = await get_user(conn, user_ref)
    if not is_admin and user.is_admin:
        if acting_user_id == user.id:
            raise InvalidRequest("you cannot remove your own admin rights", code="own_account")
        await _keep_an_admin(conn, user.id)
    return await _set_flags(conn, user, is_admin=is_admin)


async def _keep_an_admin(conn: AsyncConnection, losing_id: int) -> None:
    """Refuse a change that would leave no enabled admin. The admins' rows are locked (PostgreSQL) so two
    operators demoting each other at once cannot both pass; SQLite's write transactions are serial anyway."""
    admins = select(users.c.id).where(users.c.is_admin, users.c.disabled.is_(False)).with_for_update()
    others = [row.id for row in await conn.execute(admins) if row.id != losing_id]
    if not others:
        raise Conflict("this is the last enabled admin; make another user an admin first", code="last_admin")


async def _set_flags(conn: AsyncConnection, user: Row[Any], **flags: bool) -> dict[str, Any]:
    changes = {name: value for name, value in flags.items() if bool(getattr(user, name)) != value}
    if changes:
        await conn.execute(update(users).where(users.c.id == user.id).values(**changes))
        await bump_config_version(conn)  # keys of a disabled user, an admin key's rights: the directory holds both
    return user_dict(await get_user(conn, user.id))


def user_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "is_admin": bool(row.is_admin),
        "disabled": bool(row.disabled),
        "balance_nanos": row.balance,
        "created_at": as_utc(row.created_at),
        "email_verified": row.email_verified_at is not None,
        "two_factor": row.totp_enabled_at is not None,
    }


def parse_model_patterns(raw: str | list[str] | None) -> str | None:
    if raw is None:
        return None
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    patterns = [str(p).strip() for p in items if str(p).strip()]
    if not patterns:
        return None
    for pattern in patterns:
        if not MODEL_PATTERN_RE.match(pattern) or len(pattern) > 200:
            raise InvalidRequest(f"'{pattern}' is not a model id or pattern (like openai/* or gpt-4.1)", param="models")
    return ",".join(patterns)


def parse_expiry(value: str | date | None) -> datetime | None:
    """``YYYY-MM-DD``: the key works through that whole day (UTC) and stops at the next midnight."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidRequest(f"'{value}' is not a date like 2026-12-31", param="expires") from None
    expires = datetime.combine(value + timedelta(days=1), time(0), tzinfo=timezone.utc)
    if expires <= utc_now():
        raise InvalidRequest(f"the expiry date {value.isoformat()} is in the past", param="expires")
    return expires


async def create_key(
    conn: AsyncConnection,
    user_ref: str | int,
    *,
    name: str | None = None,
    limit_nanos: int | None = None,
    models: str | list[str] | None = None,
    expires: str | date | None = None,
    limits: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Create a key; returns the plaintext (shown once, never stored) and the stored record.

    ``limits``: rates and spend limits by period, as ``limits.policy.parse_changes`` reads them.
    """
    user = await get_user(conn, user_ref)
    name = (name or "default").strip()
    if not name or len(name) > 200:
        raise InvalidRequest("the key name must have 1 to 200 characters", param="name")
    if limit_nanos is not None and limit_nanos < 0:
        raise InvalidRequest("the spending limit cannot be negative", param="limit")
    plaintext = new_api_key()
    result = await conn.execute(
        insert(api_keys)
        .values(
            user_id=user.id,
            name=name,
            key_hash=hash_api_key(plaintext),
            key_prefix=display_prefix(plaintext),
            used_nanos=0,
            held_nanos=0,
            models=parse_model_patterns(models),
            expires_at=parse_expiry(expires),
            created_at=utc_now(),
            **{"limit_nanos": limit_nanos, **parse_changes(limits or {})},
        )
        .returning(api_keys.c.id)
    )
    key_id = result.scalar_one()
    await bump_config_version(conn)
    return plaintext, await get_key(conn, key_id)


async def update_key(conn: AsyncConnection, key_id: int | str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change a key's name, models, expiry, total limit (``limit``, USD) or rate and period limits.

    Only the names present change; ``None`` / ``"none"`` clears a limit, the models or the expiry.
    """
    key = await get_key(conn, key_id)
    values: dict[str, Any] = parse_changes(changes)
    if "name" in changes:
        name = str(changes["name"] or "").strip()
        if not name or len(name) > 200:
            raise InvalidRequest("the key name must have 1 to 200 characters", param="name")
        values["name"] = name
    if "models" in changes:
        values["models"] = None if cleared(changes["models"]) else parse_model_patterns(changes["models"])
    if "expires" in changes:
        values["expires_at"] = None if cleared(changes["expires"]) else parse_expiry(changes["expires"])
    if values:
        await conn.execute(update(api_keys).where(api_keys.c.id == key["id"]).values(**values))
        await bump_config_version(conn)
    return await get_key(conn, key["id"])


async def set_account_limits(conn: AsyncConnection, user_ref: str | int, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Set an account's limits (the same names as a key's); they apply to all its keys together."""
    user = await get_user(conn, user_ref)
    values = parse_changes(changes)
    if values:
        await conn.execute(update(users).where(users.c.id == user.id).values(**values))
        await bump_config_version(conn)
    return account_limits(await get_user(conn, user.id))


def account_limits(row: Row[Any]) -> dict[str, Any]:
    return {"user_id": row.id, "email": row.email, **Limits.of(row).as_dict()}


async def key_row(conn: AsyncConnection, key_id: int) -> Row[Any]:
    """A key's whole row (counters and limits included), for the key's own view of itself."""
    return (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()


async def live_key_ids(conn: AsyncConnection, user_id: int, name: str) -> list[int]:
    """The ids of an account's keys of this name that are neither revoked nor expired, oldest first."""
    query = (
        select(api_keys.c.id, api_keys.c.expires_at)
        .where(api_keys.c.user_id == user_id, api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
        .order_by(api_keys.c.id)
    )
    now = utc_now()
    return [row.id for row in (await conn.execute(query)).all() if row.expires_at is None or as_utc(row.expires_at) > now]


async def get_key(conn: AsyncConnection, key_id: int | str) -> dict[str, Any]:
    try:
        kid = int(key_id)
    except (TypeError, ValueError):
        raise InvalidRequest(f"'{key_id}' is not a key id (a number; see `tokenhub key list`)", param="key_id") from None
    if not 0 < kid < 2**63:  # beyond what the database stores: no such key
        raise NotFound(f"no key with id {kid}", code="key_not_found")
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == kid))).first()
    if row is None:
        raise NotFound(f"no key with id {kid}", code="key_not_found")
    return key_dict(row)


async def list_keys(conn: AsyncConnection, user_ref: str | int) -> list[dict[str, Any]]:
    user = await get_user(conn, user_ref)
    rows = await conn.execute(select(api_keys).where(api_keys.c.user_id == user.id).order_by(api_keys.c.id))
    return [key_dict(row) for row in rows]


async def revoke_key(conn: AsyncConnection, key_id: int | str) -> dict[str, Any]:
    key = await get_key(conn, key_id)
    if key["revoked_at"] is None:
        await conn.execute(update(api_keys).where(api_keys.c.id == key["id"]).values(revoked_at=utc_now()))
        await bump_config_version(conn)
    return await get_key(conn, key["id"])


def key_dict(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "name": row.name,
        "prefix": row.key_prefix,
        "limit_nanos": row.limit_nanos,
        "used_nanos": row.used_nanos,
        "held_nanos": row.held_nanos,
        "models": row.models.split(",") if row.models else None,
        **{name: getattr(row, name) for name in LIMIT_FIELDS},
        "expires_at": as_utc(row.expires_at),
        "revoked_at": as_utc(row.revoked_at),
        "created_at": as_utc(row.created_at),
    }
