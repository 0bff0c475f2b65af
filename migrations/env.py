"""Alembic environment: the URL comes from the caller's config (``isobench db upgrade``) or,
when run by the ``alembic`` command itself, from isobench's settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from isobench.models.settings import Settings
from isobench.models.tables import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings().database_url


def _configure(**kwargs: object) -> None:
    url = _url()
    context.configure(
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=url.startswith("sqlite"),
        # Each migration is its own transaction, so a failure leaves a known revision.
        transaction_per_migration=True,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
