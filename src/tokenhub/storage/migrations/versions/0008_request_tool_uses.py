"""server-tool uses of a request

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 22:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # JSON text, e.g. {"web_search": 2}: the server-tool uses the request was charged for (NULL: none)
    op.add_column('requests', sa.Column('tool_uses', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('requests', 'tool_uses')
