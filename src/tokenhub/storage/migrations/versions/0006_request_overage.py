"""requests.overage_nanos: usage an upstream reported beyond what the account could pay

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 22:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('requests', sa.Column('overage_nanos', sa.BigInteger(), nullable=False, server_default='0'))


def downgrade() -> None:
    op.drop_column('requests', 'overage_nanos')
