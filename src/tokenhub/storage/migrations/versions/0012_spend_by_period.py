"""spend by period: what each key and account has spent this day, week and month (and each account in total)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 20:30:00

A spend limit by period was checked against a sum over the requests of the period, in every ledger
group that had a hold of a limited key or account: 60–80 ms a group once a key had 200,000 requests
in its month, and growing with them. The ledger now keeps each key's and account's spend by day (and
each account's in total) in this table, moved in the transaction that writes each hold and
settlement; a week or a month is the sum of its days. The upgrade fills the current week's and
month's days and every account's total from the requests stored.

Every process must run the new code once the table exists: a process of an earlier version would
write requests without moving their period's row (`tokenhub ledger check` reports the difference).
"""
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

TOTAL_START = '1970-01-01'


def upgrade() -> None:
    spend = op.create_table(
        'spend_by_period',
        sa.Column('scope', sa.String(8), nullable=False),
        sa.Column('ident', sa.Integer(), nullable=False),
        sa.Column('period', sa.String(8), nullable=False),
        sa.Column('start', sa.String(10), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('scope', 'ident', 'period', 'start'),
        sqlite_with_rowid=False,
    )
    requests = sa.table(
        'requests', sa.column('key_id', sa.Integer()), sa.column('user_id', sa.Integer()), sa.column('state', sa.String()),
        sa.column('hold_nanos', sa.BigInteger()), sa.column('cost_nanos', sa.BigInteger()),
        sa.column('created_at', sa.DateTime(timezone=True)),
    )
    spent = sa.case((requests.c.state == 'held', requests.c.hold_nanos), else_=requests.c.cost_nanos)
    today = datetime.now(timezone.utc).date()
    since = min(today - timedelta(days=today.weekday()), today.replace(day=1))  # the current week's and month's days
    bind = op.get_bind()
    amounts: dict[tuple[str, int, str, str], int] = {}
    recent = sa.select(requests.c.key_id, requests.c.user_id, requests.c.created_at, spent).where(requests.c.created_at >= _midnight(since))
    for key_id, user_id, created_at, amount in bind.execute(recent):
        day = _day(created_at)
        for row in (('key', key_id, 'day', day), ('user', user_id, 'day', day)):
            amounts[row] = amounts.get(row, 0) + int(amount)
    for user_id, amount in bind.execute(sa.select(requests.c.user_id, sa.func.sum(spent)).group_by(requests.c.user_id)):
        amounts[('user', user_id, 'total', TOTAL_START)] = int(amount or 0)
    rows = [dict(zip(('scope', 'ident', 'period', 'start'), row), amount=amount) for row, amount in amounts.items() if amount]
    if rows:
        op.bulk_insert(spend, rows)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _day(created_at: datetime | str) -> str:
    """The UTC day (ISO) of a stored created_at: SQLite's text (naive UTC) or PostgreSQL's datetime."""
    if isinstance(created_at, str):
        return created_at[:10]
    if created_at.tzinfo is not None:
        created_at = created_at.astimezone(timezone.utc)
    return created_at.date().isoformat()


def downgrade() -> None:
    op.drop_table('spend_by_period')
