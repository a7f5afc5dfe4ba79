"""spend by period: what each key and account has spent this day, week and month (and each account in total)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 20:30:00

A spend limit by period was checked against a sum over the requests of the period, in every ledger
group that had a hold of a limited key or account: 60–80 ms a group once a key had 200,000 requests
in its month, and growing with them. The ledger now keeps the sums in this table, moved in the
transaction that writes each hold and settlement. The upgrade fills the current periods' rows from
the requests stored; rows of past periods are never read.

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
    spent = sa.func.sum(sa.case((requests.c.state == 'held', requests.c.hold_nanos), else_=requests.c.cost_nanos))
    today = datetime.now(timezone.utc).date()
    starts = {'day': today, 'week': today - timedelta(days=today.weekday()), 'month': today.replace(day=1), 'total': None}
    bind = op.get_bind()
    rows = []
    for scope, column in (('key', requests.c.key_id), ('user', requests.c.user_id)):
        for period, start in starts.items():
            if start is None and scope == 'key':
                continue  # a key's total is its own counters (api_keys.used_nanos, held_nanos)
            query = sa.select(column, spent).group_by(column)
            if start is not None:
                query = query.where(requests.c.created_at >= _midnight(start))
            label = TOTAL_START if start is None else start.isoformat()
            rows += [{'scope': scope, 'ident': ident, 'period': period, 'start': label, 'amount': int(amount)}
                     for ident, amount in bind.execute(query) if amount]
    if rows:
        op.bulk_insert(spend, rows)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def downgrade() -> None:
    op.drop_table('spend_by_period')
