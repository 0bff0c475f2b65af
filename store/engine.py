"""The database engine and sessions, for SQLite (embedded default) and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from isobench.models.settings import normalize_database_url


def _setup_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Readers (the report, the UI) must not block a sweep that is writing results.
    cursor.execute("PRAGMA journal_mode = WAL;")
    # SQLite ignores foreign keys unless asked, and the schema relies on them for cascades.
    cursor.execute("PRAGMA foreign_keys = ON;")
    # WAL makes NORMAL durable against application crashes, which is what a sweep needs.
    cursor.execute("PRAGMA synchronous = NORMAL;")
    # Several processes (worker, CLI) share the file: wait for a lock instead of failing.
    cursor.execute("PRAGMA busy_timeout = 60000;")
    cursor.close()


@cache
def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    url = normalize_database_url(url)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _setup_sqlite)
    return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session whose work commits as one transaction, or not at all."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
