"""Credits and ledger checks. Functions take an open connection; the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, or_, select, update

from tokenhub.accounts.service import get_user
from tokenhub.billing.ledger_plan import spend_since, spent_in_periods
from tokenhub.errors import InvalidRequest
from tokenhub.limits.policy import period_start
from tokenhub.money import format_usd
from tokenhub.storage import AsyncConnection
from tokenhub.storage.engine import as_utc, utc_now
from tokenhub.storage.tables import api_keys, ledger_entries, requests, spend_by_period, users

REQUEST_KINDS = ("hold", "release", "charge")
MAX_NOTE = 500


async def add_credits(
    conn: AsyncConnection, user_ref: str | int, amount_nanos: int, *, note: str | None = None, kind: str = "adjustment"
) -> dict[str, Any]:
    """Credit (or, with a negative amount, debit) a user; one ledger entry, atomically."""
    if amount_nanos == 0:
        raise InvalidRequest("the amount must not be zero", param="amount")
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidRequest(f"the note must have at most {MAX_NOTE} characters", param="note")
    user = await get_user(conn, user_ref)
    result = await conn.execute(
        update(users)
        .where(users.c.id == user.id, users.c.balance + amount_nanos >= 0)
        .values(balance=users.c.balance + amount_nanos)
        .returning(users.c.balance)
    )
    balance = result.scalar_one_or_none()
    if balance is None:
        raise InvalidRequest(
            f"a debit of ${format_usd(-amount_nanos)} would take the balance of {user.email} below zero", param="amount"
        )
    await conn.execute(
        insert(ledger_entries).values(
            user_id=user.id, kind=kind, amount=amount_nanos, balance_after=balance, note=note, created_at=utc_now()
        )
    )
    return await credits_summary(conn, user.id)


async def balance_of(conn: AsyncConnection, user_id: int) -> int | None:
    """An account's spendable balance in nanos (None: no such account)."""
    return await conn.scalar(select(users.c.balance).where(users.c.id == user_id))


async def credits_summary(conn: AsyncConnection, user_ref: str | int) -> dict[str, Any]:
    """Balance (spendable), open holds, everything credited and everything charged, in nanos."""
    user = await get_user(conn, user_ref)
    sums = (
        await conn.execute(
            select(
                func.coalesce(func.sum(case((ledger_entries.c.kind.not_in(REQUEST_KINDS), ledger_entries.c.amount), else_=0)), 0),
                func.coalesce(func.sum(case((ledger_entries.c.kind == "charge", -ledger_entries.c.amount), else_=0)), 0),
            ).where(ledger_entries.c.user_id == user.id)
        )
    ).one()
    held = await conn.scalar(
        select(func.coalesce(func.sum(requests.c.hold_nanos), 0)).where(requests.c.user_id == user.id, requests.c.state == "held")
    )
    return {
        "user_id": user.id,
        "email": user.email,
        "balance_nanos": user.balance,
        "held_nanos": int(held or 0),
        "total_credits_nanos": int(sums[0]),
        "total_usage_nanos": int(sums[1]),
    }


async def ledger_history(
    conn: AsyncConnection, user_id: int, limit: int = 50, before_id: int | None = None
) -> list[dict[str, Any]]:
    """A user's ledger entries, newest first: ``limit`` of them (1..1000), older than ``before_id`` if given."""
    e = ledger_entries.c
    query = select(ledger_entries).where(e.user_id == user_id)
    if before_id is not None:
        query = query.where(e.id < before_id)
    query = query.order_by(e.id.desc()).limit(min(max(int(limit), 1), 1000))
    return [
        {
            "id": int(row.id),
            "kind": row.kind,
            "amount_nanos": int(row.amount),
            "balance_after_nanos": int(row.balance_after),
            "request_id": row.request_id,
            "note": row.note,
            "created_at": as_utc(row.created_at),
        }
        for row in await conn.execute(query)
    ]


@dataclass
class LedgerReport:
    users_checked: int
    keys_checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


async def check_ledger(conn: AsyncConnection) -> LedgerReport:
    """Every balance equals the sum of its entries and is not negative; every entry's balance_after is the sum
    of its user's entries up to it, and its user exists; every request's key exists and is its user's; every
    key's counters equal its requests' and stay within its limit; every finished request has its hold,
    release and charge."""
    problems: list[str] = []
    entry_sums = dict(
        (await conn.execute(select(ledger_entries.c.user_id, func.sum(ledger_entries.c.amount)).group_by(ledger_entries.c.user_id))).all()
    )
    all_users = (await conn.execute(select(users.c.id, users.c.email, users.c.balance))).all()
    for user in all_users:
        expected = int(entry_sums.get(user.id) or 0)
        if user.balance != expected:
            problems.append(
                f"user {user.email}: balance {format_usd(user.balance)} != sum of ledger entries {format_usd(expected)}"
            )
        if user.balance < 0:
            problems.append(f"user {user.email}: balance {format_usd(user.balance)} is below zero")
    known_users = {user.id for user in all_users}
    for user_id in sorted(set(entry_sums) - known_users):  # (no foreign key guards these: tables.py)
        problems.append(f"ledger entries of user {user_id}, which does not exist: {format_usd(int(entry_sums[user_id]))} in all")
    running = func.sum(ledger_entries.c.amount).over(partition_by=ledger_entries.c.user_id, order_by=ledger_entries.c.id)
    chain = select(ledger_entries.c.id, ledger_entries.c.user_id, ledger_entries.c.balance_after, running.label("running")).subquery()
    for entry in await conn.execute(select(chain).where(chain.c.balance_after != chain.c.running).order_by(chain.c.id).limit(10)):
        problems.append(
            f"ledger entry {entry.id} (user {entry.user_id}): balance after {format_usd(entry.balance_after)} != the sum of the "
            f"user's entries up to it {format_usd(int(entry.running))}"
        )
    open_holds = dict(
        (
            await conn.execute(
                select(requests.c.key_id, func.sum(requests.c.hold_nanos)).where(requests.c.state == "held").group_by(requests.c.key_id)
            )
        ).all()
    )
    charged = dict(
        (await conn.execute(select(requests.c.key_id, func.sum(requests.c.cost_nanos)).group_by(requests.c.key_id))).all()
    )
    all_keys = (
        await conn.execute(select(api_keys.c.id, api_keys.c.used_nanos, api_keys.c.held_nanos, api_keys.c.limit_nanos))
    ).all()
    for key in all_keys:
        if key.limit_nanos is not None and key.used_nanos + key.held_nanos > key.limit_nanos:
            problems.append(
                f"key {key.id}: used {format_usd(key.used_nanos)} + held {format_usd(key.held_nanos)} is past its limit "
                f"{format_usd(key.limit_nanos)}"
            )
        if key.held_nanos != int(open_holds.get(key.id) or 0):
            problems.append(f"key {key.id}: held {format_usd(key.held_nanos)} != open holds {format_usd(int(open_holds.get(key.id) or 0))}")
        if key.used_nanos != int(charged.get(key.id) or 0):
            problems.append(f"key {key.id}: used {format_usd(key.used_nanos)} != charged requests {format_usd(int(charged.get(key.id) or 0))}")
    owner = api_keys.alias("owner")
    strays = select(requests.c.id, requests.c.user_id, requests.c.key_id).select_from(
        requests.outerjoin(owner, owner.c.id == requests.c.key_id)
    )
    for stray in await conn.execute(strays.where(or_(owner.c.id.is_(None), owner.c.user_id != requests.c.user_id)).limit(10)):
        problems.append(f"request {stray.id}: key {stray.key_id} does not exist or is not a key of user {stray.user_id}")
    per_request = (
        await conn.execute(
            select(requests.c.id, requests.c.state, requests.c.hold_nanos, requests.c.cost_nanos).where(requests.c.state != "held")
        )
    ).all()
    entries_by_request: dict[str, dict[str, int]] = {}
    for rid, kind, amount in await conn.execute(
        select(ledger_entries.c.request_id, ledger_entries.c.kind, ledger_entries.c.amount).where(ledger_entries.c.request_id.is_not(None))
    ):
        bucket = entries_by_request.setdefault(rid, {})
        bucket[kind] = bucket.get(kind, 0) + amount
    for req in per_request:
        got = entries_by_request.get(req.id, {})
        if got.get("hold", 0) != -req.hold_nanos or got.get("release", 0) != req.hold_nanos or got.get("charge", 0) != -req.cost_nanos:
            problems.append(f"request {req.id}: ledger entries {got} do not match hold {req.hold_nanos} and cost {req.cost_nanos}")
    await _check_spend(conn, problems)
    return LedgerReport(users_checked=len(all_users), keys_checked=len(all_keys), problems=problems)


async def _check_spend(conn: AsyncConnection, problems: list[str]) -> None:
    """Each key's and account's spend in the current day, week and month (and each account's in total), as
    spend_by_period keeps it for the spend limits, equals the sum over the period's requests: open holds
    at their amount, the rest at their cost."""
    now = utc_now()
    today = now.date()
    amount = func.sum(case((requests.c.state == "held", requests.c.hold_nanos), else_=requests.c.cost_nanos))
    since = spend_since({"week", "month"}, today)
    kept_rows: dict[tuple[str, int], list[tuple[str, str, int]]] = {}
    rows = select(spend_by_period).where(or_(spend_by_period.c.start >= since, spend_by_period.c.period == "total"))
    for row in await conn.execute(rows):
        kept_rows.setdefault((row.scope, row.ident), []).append((row.period, row.start, row.amount))
    for scope, column in (("key", requests.c.key_id), ("user", requests.c.user_id)):
        for period in ("day", "week", "month") if scope == "key" else ("day", "week", "month", "total"):
            start = period_start(period, now)
            query = select(column, amount).group_by(column)
            if start is not None:
                query = query.where(requests.c.created_at >= start)
            sums = {ident: int(total) for ident, total in await conn.execute(query) if total}
            kept = {ident: spent_in_periods({period}, found, today)[period] for (kind, ident), found in kept_rows.items() if kind == scope}
            for ident in sorted(set(sums) | {i for i, k in kept.items() if k}):
                if sums.get(ident, 0) != kept.get(ident, 0):
                    problems.append(
                        f"{scope} {ident}: spend this {period} kept as {format_usd(kept.get(ident, 0))} "
                        f"!= the sum of its requests {format_usd(sums.get(ident, 0))}"
                    )
