"""stored Responses API responses, per account

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 06:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table only. response / input_items / context are JSON text.
    op.create_table(
        'stored_responses',
        sa.Column('id', sa.String(64), primary_key=True),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE'), nullable=False),
        sa.Column('model', sa.String(200), nullable=False),
        sa.Column('response', sa.Text(), nullable=False),
        sa.Column('input_items', sa.Text(), nullable=False),
        sa.Column('context', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_stored_responses_user_id', 'stored_responses', ['user_id'])
    op.create_index('ix_stored_responses_expires_at', 'stored_responses', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_stored_responses_expires_at', table_name='stored_responses')
    op.drop_index('ix_stored_responses_user_id', table_name='stored_responses')
    op.drop_table('stored_responses')
