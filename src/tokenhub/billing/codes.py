"""Redemption codes: prepaid credit an operator hands out, redeemed once.

A code is ``THC-XXXX-XXXX-XXXX-XXXX``: 16 symbols from a 32-symbol alphabet without 0/O/1/I,
so 80 random bits from ``secrets``. Only its SHA-256 is stored (a fast hash is right for a secret
with that much entropy); the plaintext is returned once, by ``create_batch``.

Redemption is one conditional UPDATE (``… WHERE code_hash = ? AND redeemed_by IS NULL AND NOT
disabled AND (expires_at IS NULL OR expires_at > now) RETURNING …``) followed, in the same
transaction, by the ``redeem`` ledger entry. Two submissions of one code at the same moment — by
one user or by many, in one process or many — serialise on the row (PostgreSQL's row lock, SQLite's
write lock): the first flips it, every other one matches no row. An unknown, used, expired or
disabled code gets the same error, so the answer reveals nothing about which codes exist.

Functions take an open connection; the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update

from tokenhub.accounts.service import get_user
from tokenhub.billing.service import add_credits
from tokenhub.errors import InvalidRequest, NotFound
from tokenhub.money import format_usd
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import as_utc, utc_now
from tokenhub.storage.tables import redemption_codes, users

CODE_PREFIX = "THC"
# Crockford-like: no 0/O, no 1/I, so a code read aloud or copied by hand stays unambiguous.
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
GROUPS, GROUP_LEN = 4, 4
CODE_SYMBOLS = GROUPS * GROUP_LEN  # 16 symbols x 5 bits = 80 bits
MAX_BATCH = 10_000
MAX_AMOUNT_NANOS = 100_000 * 10**9  # $100,000 per code
MAX_LABEL = 200
INVALID_CODE_MESSAGE = "this code is not valid: it may be mistyped, already used, expired or disabled"


class CodeBatch(list[str]):
    """The plaintext codes of a new batch (shown once), with the batch's id."""

    batch_id: str

    def __init__(self, codes: list[str], batch_id: str) -> None:
        super().__init__(codes)
        self.batch_id = batch_id


def new_code() -> str:
    symbols = "".join(secrets.choice(ALPHABET) for _ in range(CODE_SYMBOLS))
    groups = [symbols[i : i + GROUP_LEN] for i in range(0, CODE_SYMBOLS, GROUP_LEN)]
    return "-".join([CODE_PREFIX, *groups])


def normalize_code(code: str) -> str | None:
    """The canonical form of what a user typed (any case, spaces or dashes), or None if malformed."""
    if not isinstance(code, str) or len(code) > 100:
        return None
    compact = "".join(ch for ch in code.upper() if ch not in " -\t\r\n")
    if compact.startswith(CODE_PREFIX):
        compact = compact[len(CODE_PREFIX):]
    if len(compact) != CODE_SYMBOLS or any(ch not in ALPHABET for ch in compact):
        return None
    return "-".join([CODE_PREFIX, *(compact[i : i + GROUP_LEN] for i in range(0, CODE_SYMBOLS, GROUP_LEN))])


def hash_code(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


def code_prefix(canonical: str) -> str:
    return canonical[: len(CODE_PREFIX) + 1 + GROUP_LEN]  # "THC-XXXX"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidRequest("times must carry a timezone", param="expires_at")
    return value.astimezone(timezone.utc)


async def create_batch(
    conn: AsyncConnection,
    amount_nanos: int,
    count: int,
    expires_at: datetime | None = None,
    label: str | None = None,
    created_by: int | None = None,
    *,
    now: datetime | None = None,
) -> CodeBatch:
    """Create ``count`` codes worth ``amount_nanos`` each; returns the plaintext codes, once."""
    if isinstance(amount_nanos, bool) or not isinstance(amount_nanos, int) or amount_nanos <= 0:
        raise InvalidRequest("the amount must be a positive number of nanos", param="amount")
    if amount_nanos > MAX_AMOUNT_NANOS:
        raise InvalidRequest(f"a code is worth at most ${format_usd(MAX_AMOUNT_NANOS)}", param="amount")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BATCH:
        raise InvalidRequest(f"the count must be between 1 and {MAX_BATCH}", param="count")
    if label is not None:
        label = label.strip() or None
        if label is not None and len(label) > MAX_LABEL:
            raise InvalidRequest(f"the label must have at most {MAX_LABEL} characters", param="label")
    now = _utc(now) or utc_now()
    expires_at = _utc(expires_at)
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("the expiry must be in the future", param="expires_at")
    if created_by is not None:
        created_by = (await get_user(conn, created_by)).id

    batch_id = "bat_" + secrets.token_hex(8)
    codes = [new_code() for _ in range(count)]
    await conn.execute(
        insert(redemption_codes),
        [
            {
                "code_hash": hash_code(code),
                "code_prefix": code_prefix(code),
                "amount_nanos": amount_nanos,
                "batch_id": batch_id,
                "label": label,
                "created_by": created_by,
                "created_at": now,
                "expires_at": expires_at,
                "redeemed_by": None,
                "redeemed_at": None,
                "disabled": False,
            }
            for code in codes
        ],
    )
    return CodeBatch(codes, batch_id)


async def redeem(conn: AsyncConnection, user_id: int, code: str, *, now: datetime | None = None) -> int:
    """Redeem a code for a user; returns the nanos credited. Raises ``invalid_code`` otherwise."""
    user = await get_user(conn, user_id)
    canonical = normalize_code(code)
    if canonical is None:
        raise InvalidRequest(INVALID_CODE_MESSAGE, code="invalid_code", param="code")
    now = _utc(now) or utc_now()
    rc = redemption_codes.c
    result = await conn.execute(
        update(redemption_codes)
        .where(
            rc.code_hash == hash_code(canonical),
            rc.redeemed_by.is_(None),
            rc.disabled.is_(False),
            or_(rc.expires_at.is_(None), rc.expires_at > now),
        )
        .values(redeemed_by=user.id, redeemed_at=now)
        .returning(rc.amount_nanos, rc.code_prefix)
    )
    row = result.first()
    if row is None:
        raise InvalidRequest(INVALID_CODE_MESSAGE, code="invalid_code", param="code")
    await add_credits(conn, user.id, row.amount_nanos, kind="redeem", note=f"code {row.code_prefix}…")
    return int(row.amount_nanos)


def _code_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "code_prefix": row.code_prefix + "…",
        "amount_nanos": row.amount_nanos,
        "batch_id": row.batch_id,
        "label": row.label,
        "created_at": as_utc(row.created_at),
        "expires_at": as_utc(row.expires_at),
        "disabled": bool(row.disabled),
        "redeemed_by": row.redeemed_by,
        "redeemed_by_email": row.redeemed_by_email,
        "redeemed_at": as_utc(row.redeemed_at),
    }


async def list_codes(conn: AsyncConnection, batch_id: str) -> list[dict[str, Any]]:
    """Every code of a batch (prefix only), with who redeemed it and when."""
    rows = await conn.execute(
        select(redemption_codes, users.c.email.label("redeemed_by_email"))
        .select_from(redemption_codes.outerjoin(users, users.c.id == redemption_codes.c.redeemed_by))
        .where(redemption_codes.c.batch_id == batch_id)
        .order_by(redemption_codes.c.id)
    )
    codes = [_code_dict(row) for row in rows]
    if not codes:
        raise NotFound(f"no code batch {batch_id}", code="batch_not_found")
    return codes


async def list_batches(conn: AsyncConnection, *, now: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Batches, newest first: amount, label, expiry, and how many codes are redeemed / disabled."""
    now = _utc(now) or utc_now()
    rc = redemption_codes.c
    rows = await conn.execute(
        select(
            rc.batch_id,
            func.min(rc.label).label("label"),
            func.min(rc.amount_nanos).label("amount_nanos"),
            func.min(rc.created_by).label("created_by"),
            func.min(rc.created_at).label("created_at"),
            func.min(rc.expires_at).label("expires_at"),
            func.count().label("count"),
            func.count(rc.redeemed_by).label("redeemed"),
            func.sum(case((rc.disabled.is_(True), 1), else_=0)).label("disabled"),
        )
        .group_by(rc.batch_id)
        .order_by(func.min(rc.id).desc())
        .limit(min(max(limit, 1), 1000))
    )
    batches = []
    for row in rows:
        expires_at = as_utc(row.expires_at)
        batches.append(
            {
                "batch_id": row.batch_id,
                "label": row.label,
                "amount_nanos": int(row.amount_nanos),
                "created_by": row.created_by,
                "created_at": as_utc(row.created_at),
                "expires_at": expires_at,
                "expired": expires_at is not None and expires_at <= now,
                "count": int(row.count),
                "redeemed": int(row.redeemed),
                "disabled": int(row.disabled or 0),
            }
        )
    return batches


async def disable_codes(conn: AsyncConnection, *, batch_id: str | None = None, code_id: int | None = None) -> int:
    """Disable one code or the unredeemed codes of a batch; returns how many were disabled."""
    if (batch_id is None) == (code_id is None):
        raise InvalidRequest("give either a batch or a code")
    rc = redemption_codes.c
    target = rc.batch_id == batch_id if batch_id is not None else rc.id == code_id
    result = await conn.execute(
        update(redemption_codes).where(and_(target, rc.redeemed_by.is_(None), rc.disabled.is_(False))).values(disabled=True)
    )
    return int(result.rowcount or 0)
