"""Storage: one SQLAlchemy Core schema on SQLite (default) or PostgreSQL, migrated by Alembic."""
