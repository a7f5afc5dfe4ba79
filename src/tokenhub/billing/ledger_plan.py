"""What one group of ledger operations does, decided in memory: the operations and ``plan_group``.

A group's transaction (``ledger_store``) locks and reads the balances, key counters and spend by
period involved and the state of the requests it settles, and hands them here.
``plan_group`` decides each hold in arrival order and each settlement once, and never lets a charge
take a balance below zero or a key past a limit: the rest of a cost is the request's overage. Pure
arithmetic, no I/O: the property test drives it through the writer, and the stores only write what
it decided.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from tokenhub.errors import InsufficientCredits, LimitReached
from tokenhub.limits.policy import first_day, period_end
from tokenhub.money import format_usd
from tokenhub.storage.engine import utc_now
from tokenhub.tokens import Usage

Budget = tuple[str, int, str, int]  # scope ("key" | "user"), its id, period (day|week|month|total), limit
SpendKey = tuple[str, int, str]  # scope, id, period
KeyFigures = tuple[int | None, int, int]  # a key's limit (None: none), used and held
SpendRow = tuple[str, int, str, str]  # a row of spend_by_period: scope, its id, "day" | "total", its first day (ISO)
TOTAL_START: Final = "1970-01-01"  # the first day of the one period "total"


def spend_rows(key_id: int, user_id: int, day: date) -> tuple[SpendRow, SpendRow, SpendRow]:
    """The rows of spend_by_period a request created on ``day`` counts in: its key's day, its account's day,
    its account's total (a key's total is its own counters, api_keys.used_nanos and held_nanos)."""
    iso = day.isoformat()
    return ("key", key_id, "day", iso), ("user", user_id, "day", iso), ("user", user_id, "total", TOTAL_START)


def spend_since(periods: set[str], today: date) -> str:
    """The first day (ISO) from which a key's or account's days in spend_by_period make up ``periods``."""
    firsts = [first_day(period, today) for period in periods]
    return min((first for first in firsts if first is not None), default=today).isoformat()


def spent_in_periods(periods: set[str], rows: list[tuple[str, str, int]], today: date) -> dict[str, int]:
    """What one key or account spent in each of ``periods`` (day | week | month | total) that ``today`` is in,
    from its rows of spend_by_period (period, first day, amount): the total's row, or its days in the period."""
    out = {}
    for period in periods:
        start = first_day(period, today)
        if start is None:
            out[period] = sum(amount for kind, _, amount in rows if kind == "total")
        else:
            first = start.isoformat()
            out[period] = sum(amount for kind, day, amount in rows if kind == "day" and day >= first)
    return out


@dataclass
class Hold:
    """Reserve ``amount`` for a request before it goes upstream."""

    request_id: str
    user_id: int
    key_id: int
    amount: int
    model: str
    endpoint: str = "chat"
    stream: bool = False
    channel_id: int | None = None
    upstream_model: str | None = None
    # Spend limits by period that this hold must fit in: (scope "key"|"user", id, period, limit).
    # The key's total limit is not here: the key's own counters enforce it (api_keys.limit_nanos).
    budgets: tuple[Budget, ...] = ()
    future: asyncio.Future[None] | None = None
    held_on: date | None = None  # the UTC day of its request row's created_at: set by the writer once its group commits


@dataclass
class Settlement:
    """Resolve a hold: release it and charge ``cost`` (0 for a failed request), at most what the account can pay.

    ``release_only`` settlements (the sweeper's) resolve only a hold that is still open. Any other
    settlement also resolves a hold the sweeper released meanwhile: it then charges without releasing.
    """

    request_id: str
    user_id: int
    key_id: int
    hold: int
    cost: int
    status: str  # ok | client_closed | upstream_error | truncated | interrupted | error
    usage: Usage = field(default_factory=Usage)
    http_status: int | None = None
    finish_reason: str | None = None
    latency_ms: int | None = None
    ttfb_ms: int | None = None
    error: str | None = None
    prices: str | None = None
    channel_id: int | None = None
    upstream_model: str | None = None
    model: str | None = None  # the model that answered, when not the hold's (a fallback model)
    release_only: bool = False
    # The spend limits by period a cost above the hold must still fit in (as Hold.budgets).
    budgets: tuple[Budget, ...] = ()
    # The UTC day its hold was committed (Hold.held_on), where the settling process knows it: the periods
    # whose spend the settlement moves. Without it the group reads it with the request, under its lock.
    held_on: date | None = None


Op = Hold | Settlement


class SpendLimitReached(LimitReached):
    """A spend limit by period would be exceeded: 429 until the period ends (402 for a total limit)."""

    def __init__(self, scope: str, period: str, limit: int, used: int, amount: int) -> None:
        whose = "key" if scope == "key" else "account"
        when = {"day": "today (UTC)", "week": "this week (UTC, from Monday)", "month": "this month (UTC)", "total": "in total"}[period]
        message = (
            f"This {whose}'s spending limit of ${format_usd(limit)} {when} would be exceeded: ${format_usd(max(used, 0))} "
            f"spent or reserved, and this request may cost up to ${format_usd(amount)}."
        )
        end = period_end(period, utc_now())
        headers = {"Retry-After": str(max(1, int((end - utc_now()).total_seconds()) + 1))} if end else {}
        code = f"{whose}_{period}_limit_reached" if end else f"{whose}_limit_reached"
        super().__init__(message, scope=whose, limit=period, code=code, headers=headers, status=429 if end else 402)
        if end is None:
            self.type = InsufficientCredits.type  # a total limit does not reset: like running out of credit


@dataclass
class Charge:
    """How one settlement resolved: ``charged`` + ``overage`` = the settlement's cost."""

    op: Settlement
    charged: int
    overage: int
    late: bool  # the sweeper had released the hold: nothing left to release


@dataclass
class GroupPlan:
    """What one group writes: decided in memory against the locked balances and key counters."""

    outcomes: list[Exception | None]
    entries: list[dict[str, Any]]  # ledger rows: user_id, kind, amount, balance_after, request_id
    new_requests: list[Hold]
    settled: list[Charge]
    balances: dict[int, int]  # user id -> new balance
    opening: dict[int, int]  # user id -> the balance the group was decided on (as locked, or as expected)
    key_deltas: dict[int, list[int]]  # key id -> [used delta, held delta]
    keys: dict[int, KeyFigures]  # key id -> (limit, used, held) as locked, before the deltas
    today: date  # the group's UTC day: its new requests' created_at, the day their settlements move (Hold.held_on)
    # What the decisions rest on: the least balance each account must start from, and the least room
    # (limit - used - held) each key must have, for every hold to be admitted and every charge made whole
    # (PostgreSQL's one-round-trip check asks for them: ledger_store._PG_ROOM_NAME).
    need_balances: dict[int, int] = field(default_factory=dict)
    need_rooms: dict[int, int] = field(default_factory=dict)
    limited: bool = False  # a hold was refused or a charge cut short: the decisions rest on the figures themselves
    spend: dict[SpendRow, int] = field(default_factory=dict)  # what the group adds to each row of spend_by_period


def figures_after(plan: GroupPlan) -> tuple[dict[int, int], dict[int, KeyFigures]]:
    """The balances and key counters (limit, used, held) a group leaves once committed."""
    keys = {}
    for key_id, (limit, used, held) in plan.keys.items():
        delta = plan.key_deltas.get(key_id)
        keys[key_id] = (limit, used + delta[0], held + delta[1]) if delta else (limit, used, held)
    return plan.balances, keys


def spend_scopes(batch: list[Op]) -> dict[tuple[str, int], set[str]]:
    """The (scope, id) whose spend by period this group must know: its holds' budgets, and the budgets
    of settlements that may charge more than they held (a cost above the hold, or a late settlement)."""
    scopes: dict[tuple[str, int], set[str]] = {}
    for op in batch:
        if isinstance(op, Hold) or (op.cost > 0 and not op.release_only):
            for scope, ident, period, _ in op.budgets:
                scopes.setdefault((scope, ident), set()).add(period)
    return scopes


def plan_group(
    batch: list[Op],
    balances: dict[int, int],
    keys: dict[int, KeyFigures],
    settling: dict[str, tuple[date | None, bool]],
    today: date,
    spent: dict[SpendKey, int] | None = None,
    owners: dict[int, int] | None = None,
) -> GroupPlan:
    """Decide a group: holds in arrival order against the locked figures; each settlement once.

    ``keys`` maps key id -> (limit, used, held) as locked; ``settling`` maps the request ids this
    transaction may resolve (read under its lock) to (the UTC day the request was created, late): late
    when the sweeper had already released the hold (the day None where not read: the settlement's own
    ``held_on`` says it). ``today`` is the group's UTC day (its holds' created_at). ``spent`` is what
    each (scope, id, period) of the budgets involved has spent in the period ``today`` is in
    (spend_by_period: ``spent_in_periods``), read under the same locks. ``owners`` maps each key id to its account's id, as locked: a hold whose
    key is not its account's is refused (with no figures for either). Without it (a group planned on
    figures this process knows), the check that locks them compares each key's account instead.
    """
    balance = dict(balances)
    deltas: dict[int, list[int]] = {}
    plan = GroupPlan([], [], [], [], balance, balances, deltas, keys, today)
    need_balances, need_rooms = plan.need_balances, plan.need_rooms
    settling = dict(settling)
    spent = dict(spent or {})
    starts = {period: first_day(period, today) for _, _, period in spent}  # the current periods of the budgets tracked
    by_day: dict[tuple[int, int, date], int] = {}  # (key, account, the day its requests were created) -> spend moved
    for op in batch:
        delta = deltas.setdefault(op.key_id, [0, 0])
        key = keys.get(op.key_id)
        if isinstance(op, Hold):
            limit_state = None if key is None else (key[0], key[1] + delta[0], key[2] + delta[1])
            if owners is not None and owners.get(op.key_id) != op.user_id:
                limit_state = None  # (the ledger's tables have no foreign keys: the locked rows are the check)
            refusal = _refuse(op, balance.get(op.user_id), limit_state) or _over_budget(op, spent)
            plan.outcomes.append(refusal)
            if refusal is not None:
                plan.limited = True
                continue
            _need(need_balances, op.user_id, op.amount - (balance[op.user_id] - balances[op.user_id]))
            _need(need_rooms, op.key_id, op.amount + delta[0] + delta[1])
            balance[op.user_id] -= op.amount
            delta[1] += op.amount
            _add_spend(by_day, spent, starts, op, op.amount, today)
            if op.amount:
                plan.entries.append(_entry(op.user_id, "hold", -op.amount, balance[op.user_id], op.request_id))
            plan.new_requests.append(op)
        else:
            plan.outcomes.append(None)
            if op.request_id not in settling:
                continue  # already resolved (by another party, or earlier in this group): never twice
            created_on, late = settling.pop(op.request_id)
            created_on = created_on or op.held_on
            assert created_on is not None, "a settlement's request day is read with it, or known to its process"
            released = 0 if late else op.hold  # a late settlement's hold was released by the sweeper
            balance[op.user_id] += released
            if released:
                plan.entries.append(_entry(op.user_id, "release", released, balance[op.user_id], op.request_id))
            delta[1] -= released
            _add_spend(by_day, spent, starts, op, -released, created_on)
            room = _room(op, balance[op.user_id], key, delta, spent)
            charged = max(0, min(op.cost, room))
            if charged < op.cost:
                plan.limited = True
            elif op.cost > 0:
                _need(need_balances, op.user_id, op.cost - (balance[op.user_id] - balances[op.user_id]))
                _need(need_rooms, op.key_id, op.cost + delta[0] + delta[1])
            balance[op.user_id] -= charged
            if charged:
                plan.entries.append(_entry(op.user_id, "charge", -charged, balance[op.user_id], op.request_id))
            delta[0] += charged
            _add_spend(by_day, spent, starts, op, charged, created_on)
            plan.settled.append(Charge(op, charged, op.cost - charged, late))
    spend: dict[SpendRow, int] = {}
    for (key_id, user_id, day), amount in by_day.items():
        for row in spend_rows(key_id, user_id, day):
            spend[row] = spend.get(row, 0) + amount
    plan.spend = {row: amount for row, amount in spend.items() if amount}
    return plan


def _need(needs: dict[int, int], ident: int, least: int) -> None:
    if least > needs.get(ident, least - 1):
        needs[ident] = least


def _room(op: Settlement, balance: int, key: KeyFigures | None, delta: list[int], spent: dict[SpendKey, int]) -> int:
    """The most ``op`` may charge: what the account can pay, within its key's total limit and the
    spend limits by period it names (its own hold already released from all of them)."""
    room = balance
    if key is not None:
        key_limit, used, held = key
        if key_limit is not None:
            room = min(room, key_limit - (used + delta[0]) - (held + delta[1]))
    for scope, ident, period, limit in op.budgets:
        tracked = spent.get((scope, ident, period))
        if tracked is not None:
            room = min(room, limit - tracked)
    return room


def _refuse(op: Hold, balance: int | None, key: KeyFigures | None) -> Exception | None:
    if balance is None or key is None:
        return InsufficientCredits("the account or key no longer exists", code="account_missing")
    if balance < op.amount:
        return InsufficientCredits(
            f"Insufficient credits: this request may cost up to ${format_usd(op.amount)} "
            f"and the balance is ${format_usd(max(balance, 0))}. Add credits or lower max_tokens.",
            code="insufficient_credits",
        )
    limit, used, held = key
    if limit is not None and used + held + op.amount > limit:
        return InsufficientCredits(
            f"This key's spending limit (${format_usd(limit)}) would be exceeded: ${format_usd(used)} used, "
            f"${format_usd(held)} reserved by requests in flight, and this request may cost up to ${format_usd(op.amount)}.",
            code="key_limit_reached",
        )
    return None


def _add_spend(
    by_day: dict[tuple[int, int, date], int], spent: dict[SpendKey, int], starts: dict[str, date | None], op: Op, amount: int,
    day: date,
) -> None:
    """Move what ``op``'s request (created on ``day``) counts as spent: in spend_by_period, and in each tracked
    budget of its key and account whose current period (first day in ``starts``) it is in."""
    if not amount:
        return
    index = (op.key_id, op.user_id, day)
    by_day[index] = by_day.get(index, 0) + amount
    for tracked in spent:
        scope, ident, period = tracked
        if (scope == "key" and ident == op.key_id) or (scope == "user" and ident == op.user_id):
            start = starts[period]
            if start is None or day >= start:
                spent[tracked] += amount


def _over_budget(op: Hold, spent: dict[SpendKey, int]) -> Exception | None:
    for scope, ident, period, limit in op.budgets:
        used = spent.get((scope, ident, period), 0)
        if used + op.amount > limit:
            return SpendLimitReached(scope, period, limit, used, op.amount)
    return None


def _entry(user_id: int, kind: str, amount: int, balance_after: int, request_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "kind": kind, "amount": amount, "balance_after": balance_after, "request_id": request_id}
