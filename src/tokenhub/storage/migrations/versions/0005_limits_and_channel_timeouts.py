"""per-key and per-account limits, per-channel timeouts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 08:05:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Plain ADD COLUMN on every engine (no batch table copies on SQLite: other tables reference these).
LIMIT_COLUMNS = (
    ('rpm', sa.Integer()),
    ('tpm', sa.Integer()),
    ('concurrency', sa.Integer()),
    ('daily_limit_nanos', sa.BigInteger()),
    ('weekly_limit_nanos', sa.BigInteger()),
    ('monthly_limit_nanos', sa.BigInteger()),
)
TIMEOUT_COLUMNS = ('connect_timeout', 'first_byte_timeout', 'idle_timeout')


def upgrade() -> None:
    for table in ('api_keys', 'users'):
        for name, type_ in LIMIT_COLUMNS:
            op.add_column(table, sa.Column(name, type_, nullable=True))
    op.add_column('users', sa.Column('limit_nanos', sa.BigInteger(), nullable=True))
    for name in TIMEOUT_COLUMNS:
        op.add_column('channels', sa.Column(name, sa.Float(), nullable=True))
    op.create_index('ix_requests_key_created', 'requests', ['key_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_requests_key_created', table_name='requests')
    for name in TIMEOUT_COLUMNS:
        op.drop_column('channels', name)
    op.drop_column('users', 'limit_nanos')
    for table in ('users', 'api_keys'):
        for name, _ in LIMIT_COLUMNS:
            op.drop_column(table, name)
