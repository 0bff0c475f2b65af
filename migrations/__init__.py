"""Alembic migrations of isobench's schema, one history for SQLite and PostgreSQL."""
