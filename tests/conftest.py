"""Shared fixtures: throw-away databases on SQLite and on the real PostgreSQL server.

PostgreSQL is at 127.0.0.1:5432 with trust auth on every machine of this project. Under
``CI=true`` a test that needs it fails when it is unreachable; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Prefect reads its settings once, at import: keep its home out of the user's and switch off
# the telemetry service that trips over SQLite locks in the test server.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="isobench-test-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import psycopg
import pytest
from psycopg import sql

from isobench.store import migrate
from isobench.store.engine import get_engine

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = REPO / "examples"
POSTGRES_ADMIN_URL = os.environ.get(
    "ISOBENCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_postgres() -> None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=5):
            return
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def throwaway_postgres(prefix: str = "isobench_test") -> Iterator[str]:
    """A new, empty PostgreSQL database (its libpq URL), dropped afterwards."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for isobench (psycopg 3), dropped afterwards."""
    with throwaway_postgres() as libpq_url:
        url = libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield url
        finally:
            get_engine(url).dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'isobench.db'}"
    yield url
    get_engine(url).dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each kind (no schema)."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A database of each kind, migrated to the newest schema."""
    migrate.upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture(scope="session")
def docker_client():
    """The Docker engine (DOCKER_HOST): started by .ci/run and scripts/test.sh where they can."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except DockerException as exc:
        message = (
            f"no Docker engine at {os.environ.get('DOCKER_HOST', 'the default socket')}: {exc}"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return client
