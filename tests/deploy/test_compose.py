"""docker-compose.yml: it validates with a real Compose tool, keeps to host networking, gives
Prefect and isobench a database each, and its PostgreSQL set-up and Prefect server run as
written. No registry is reachable here, so the images are not pulled: the init script and the
server's command, environment and health check are run against the machine's PostgreSQL with
the same Prefect release the image carries."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from isobench.models.settings import normalize_database_url
from isobench.store import migrate
from isobench.store.engine import get_engine
from isobench.tasks.server_start import free_port
from tests.conftest import IN_CI, POSTGRES_ADMIN_URL, REPO, require_postgres
from tests.deploy.prefect_processes import clean_env, tail
from tests.deploy.prefect_processes import stop as stop_process

BIN = Path(sys.executable).parent


def _compose_tool() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    message = "no Compose tool (docker compose or docker-compose); scripts/test.sh installs one"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _project(tmp_path: Path, **overrides: str) -> Path:
    """The compose file, its init script and an .env made from .env.example (with overrides)."""
    (tmp_path / "deploy").mkdir(parents=True)
    shutil.copy(REPO / "docker-compose.yml", tmp_path)
    shutil.copy(REPO / "deploy" / "postgres-init.sh", tmp_path / "deploy")
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={overrides.pop(key)}" if key in overrides else line)
    assert not overrides, f"not in .env.example: {overrides}"
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    return tmp_path


def _config(project: Path) -> dict:
    done = subprocess.run(
        [*_compose_tool(), "--profile", "gpu", "config"],
        cwd=project,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_validates_and_keeps_to_the_host_network(tmp_path: Path) -> None:
    services = _config(_project(tmp_path))["services"]
    assert set(services) == {"postgres", "prefect-server", "worker"}
    for name, service in services.items():
        assert service["network_mode"] == "host", name
        assert "ports" not in service and "networks" not in service, name
        assert "healthcheck" in service, name
    postgres, server, worker = (services[n] for n in ("postgres", "prefect-server", "worker"))
    assert any(v.startswith("pgdata:/var/lib/postgresql/data") for v in postgres["volumes"])
    assert any("docker-entrypoint-initdb.d" in v for v in postgres["volumes"])
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    # Two Alembic histories, two databases on the one server.
    prefect_url = server["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert prefect_url.startswith("postgresql+asyncpg://") and prefect_url.endswith("/prefect")
    assert worker["environment"]["ISOBENCH_DATABASE_URL"].endswith("/isobench")
    for service in (server, worker):  # no Prefect process may fall back to a throw-away server
        assert service["environment"]["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    # Loopback only: every listening socket is bound to 127.0.0.1.
    assert "listen_addresses=127.0.0.1" in postgres["command"]
    assert server["command"][server["command"].index("--host") + 1] == "127.0.0.1"
    assert worker["environment"]["PREFECT_WORKER_WEBSERVER_HOST"] == "127.0.0.1"
    assert worker["profiles"] == ["gpu"]
    assert worker["command"][:5] == ["prefect", "worker", "start", "--pool", "gpu-h100"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert worker["environment"]["ISOBENCH_RUNTIME__KIND"] == "docker"


def test_compose_refuses_to_run_without_a_password(tmp_path: Path) -> None:
    project = _project(tmp_path, POSTGRES_PASSWORD="")
    done = subprocess.run(
        [*_compose_tool(), "config"], cwd=project, capture_output=True, text=True, env=clean_env()
    )
    assert done.returncode != 0 and "POSTGRES_PASSWORD" in done.stderr


def _env_of(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _healthy(check: list[str], timeout_s: float) -> None:
    """Run a service's health check (CMD form) until it passes."""
    assert check[0] == "CMD"
    command = [sys.executable if check[1] == "python" else check[1], *check[2:]]
    deadline = time.monotonic() + timeout_s
    while subprocess.run(command, capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, f"health check never passed: {check}"
        time.sleep(1)


@pytest.mark.postgres
def test_compose_postgres_setup_and_prefect_server_run_as_written(tmp_path: Path) -> None:
    require_postgres()
    suffix = uuid.uuid4().hex[:10]
    prefect_db, isobench_db = f"prefect_{suffix}", f"isobench_{suffix}"
    admin = conninfo_to_dict(POSTGRES_ADMIN_URL)
    host, port, user = admin.get("host", "127.0.0.1"), admin.get("port", "5432"), admin["user"]
    project = _project(
        tmp_path / "project",
        POSTGRES_USER=user,
        POSTGRES_PORT=str(port),
        PREFECT_DB=prefect_db,
        ISOBENCH_DB=isobench_db,
        PREFECT_PORT=str(free_port()),
        ISOBENCH_DATABASE_URL=f"postgresql://{user}@{host}:{port}/{isobench_db}",
    )
    services = _config(project)["services"]
    isobench_url = normalize_database_url(_env_of(services["worker"])["ISOBENCH_DATABASE_URL"])
    try:
        # PostgreSQL's first start: the init script, as the image runs it (psql, its env).
        init = project / "deploy" / "postgres-init.sh"
        env = clean_env(**_env_of(services["postgres"]), PGHOST=host)
        for _ in range(2):  # twice: a second run (a restored volume) changes nothing
            done = subprocess.run(["sh", str(init)], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr

        # The Prefect server: the service's command and environment, its health check.
        server = services["prefect-server"]
        server_env = _env_of(server)
        server_env["PREFECT_HOME"] = str(tmp_path / "prefect-home")  # the volume, here
        env = clean_env(**server_env, PREFECT_UI_ENABLED="false")
        env["PATH"] = f"{BIN}:{env['PATH']}"
        log = tmp_path / "prefect-server.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                server["command"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            try:
                _healthy(server["healthcheck"]["test"], timeout_s=120)
            except AssertionError:
                raise AssertionError(tail(log)) from None
        finally:
            stop_process(proc)

        # isobench's schema in its own database, with the URL the worker is given.
        migrate.upgrade(isobench_url)
        with psycopg.connect(f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{prefect_db}") as conn:
            assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").fetchone()
            assert conn.execute("SELECT to_regclass('flow_run')").fetchone()[0] == "flow_run"
            assert conn.execute("SELECT to_regclass('runs')").fetchone()[0] is None
            prefect_revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        with psycopg.connect(f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{isobench_db}") as conn:
            assert conn.execute("SELECT to_regclass('runs')").fetchone()[0] == "runs"
            assert conn.execute("SELECT to_regclass('flow_run')").fetchone()[0] is None
            isobench_revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert prefect_revision != isobench_revision
    finally:
        get_engine(isobench_url).dispose()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            for name in (prefect_db, isobench_db):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
