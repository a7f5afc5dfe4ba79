"""media tasks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 05:58:58.703191
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tasks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=True),
    sa.Column('upstream_model', sa.String(length=200), nullable=False),
    sa.Column('upstream_task_id', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('job', sa.Text(), nullable=False),
    sa.Column('price_nanos', sa.BigInteger(), nullable=False),
    sa.Column('hold_nanos', sa.BigInteger(), nullable=False),
    sa.Column('cost_nanos', sa.BigInteger(), nullable=False),
    sa.Column('duration_seconds', sa.String(length=32), nullable=True),
    sa.Column('video_url', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('callback_url', sa.Text(), nullable=True),
    sa.Column('callback_state', sa.String(length=16), nullable=True),
    sa.Column('callback_attempts', sa.Integer(), nullable=False),
    sa.Column('next_callback_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('poll_attempts', sa.Integer(), nullable=False),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=40), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['key_id'], ['api_keys.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_open', ['next_poll_at'], unique=False, sqlite_where=sa.text("status IN ('queued', 'running')"), postgresql_where=sa.text("status IN ('queued', 'running')"))
        batch_op.create_index('ix_tasks_user_created', ['user_id', 'created_at'], unique=False)

    op.add_column('users', sa.Column('webhook_secret', sa.String(length=64), nullable=True))  # plain ADD COLUMN, no table copy



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret')

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_user_created')
        batch_op.drop_index('ix_tasks_open', sqlite_where=sa.text("status IN ('queued', 'running')"), postgresql_where=sa.text("status IN ('queued', 'running')"))

    op.drop_table('tasks')
