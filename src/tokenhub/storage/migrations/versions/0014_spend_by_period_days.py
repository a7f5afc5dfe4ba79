"""spend by period: an index of the rows by day, for pruning the days no limit reads any more

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 02:00:00

A key's and an account's rows of spend_by_period are read for the current day, week and month only;
rows of days before the previous month are deleted once a day (billing/sweeper.py). Their primary key
starts with the key or account, so finding the old days needs this index rather than a read of the
whole table.
"""
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_spend_by_period_day', 'spend_by_period', ['period', 'start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_spend_by_period_day', table_name='spend_by_period')
