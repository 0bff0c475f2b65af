"""Alembic against real databases: the migrations build exactly the ORM's schema, and go
down and up again cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from isobench.models.tables import Base
from isobench.store import migrate
from isobench.store.engine import get_engine

TABLES = {"tasks", "agents", "patches", "runs", "run_metrics", "run_logs", "alembic_version"}


def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    assert migrate.current_revision(empty_db_url) is None
    migrate.upgrade(empty_db_url)
    assert migrate.is_up_to_date(empty_db_url)
    assert set(inspect(get_engine(empty_db_url)).get_table_names()) == TABLES
    migrate.downgrade(empty_db_url, "base")
    assert migrate.current_revision(empty_db_url) is None
    assert set(inspect(get_engine(empty_db_url)).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(empty_db_url)
    assert migrate.is_up_to_date(empty_db_url)


def test_autogenerate_finds_no_difference(db_url: str) -> None:
    with get_engine(db_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
