"""Alembic environment: TokenHub always passes an open connection (see storage/migrate.py)."""

from alembic import context

from tokenhub.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `tokenhub` (storage.migrate.upgrade), which passes a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
