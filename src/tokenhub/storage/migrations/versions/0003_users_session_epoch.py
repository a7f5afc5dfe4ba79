"""users session epoch

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 06:10:05.319987
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite supports it with a default): a batch "move and copy" of `users` would
    # have to drop a table that other tables' rows reference.
    op.add_column('users', sa.Column('session_epoch', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_epoch')
