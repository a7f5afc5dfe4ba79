"""requests and ledger_entries without foreign keys: the ledger writer's locks guarantee their rows

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:30:00

PostgreSQL checks a foreign key with a query per row written (a trigger locking the referenced row):
a group of 16 requests wrote 16 request rows and 48 ledger entries, so 80 such queries, a fifth of
the group's server time, all of it while the group held its account's row lock. The ledger writer
only writes rows for the users and keys it has locked in the same transaction (and refuses a hold
whose key or account is gone), users and keys are never deleted, and `tokenhub ledger check` reports
an entry or a request whose user or key does not exist (docs/billing.md).

On SQLite the two tables are rebuilt (SQLite cannot drop a constraint): the upgrade copies them once.
"""
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# The constraints as each database named them: PostgreSQL's names for 0001's unnamed foreign keys;
# on SQLite they have none, so the batch operation names them by this convention to find them.
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s"}
_FOREIGN_KEYS = (
    ('requests', 'user_id', 'users'),
    ('requests', 'key_id', 'api_keys'),
    ('ledger_entries', 'user_id', 'users'),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for table in ('requests', 'ledger_entries'):
            with op.batch_alter_table(table, naming_convention=_SQLITE_NAMES, recreate='always') as batch_op:
                for fk_table, column, _ in _FOREIGN_KEYS:
                    if fk_table == table:
                        batch_op.drop_constraint(f'fk_{table}_{column}', type_='foreignkey')
        return
    for table, column, _ in _FOREIGN_KEYS:
        op.drop_constraint(f'{table}_{column}_fkey', table, type_='foreignkey')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for table in ('requests', 'ledger_entries'):
            with op.batch_alter_table(table, recreate='always') as batch_op:
                for fk_table, column, referred in _FOREIGN_KEYS:
                    if fk_table == table:
                        batch_op.create_foreign_key(f'fk_{table}_{column}', referred, [column], ['id'])
        return
    for table, column, referred in _FOREIGN_KEYS:
        op.create_foreign_key(f'{table}_{column}_fkey', table, referred, [column], ['id'])
