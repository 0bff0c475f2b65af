"""The operations path end to end: a real Prefect server (on SQLite and on PostgreSQL), set up
by ``isobench deploy`` from deploy/prefect.yaml, a process worker as on the GPU host, and the
``sweep`` and ``retry-failed`` deployments triggered through the API with parameters. The
simulated inference server stands in for vLLM."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from isobench.demo.repo import SERVER_COMMAND, server_diff
from isobench.demo.run import DEMO_CONFIG, load_demo
from isobench.flows.deployments import ZOMBIE_AUTOMATION
from isobench.intake.patches import build_patch
from isobench.models.domain import Timeouts
from isobench.runtimes.base import safe_name
from isobench.store import repository
from isobench.store.engine import session_scope
from tests.conftest import REPO, throwaway_postgres
from tests.deploy.prefect_processes import ISOBENCH, clean_env, prefect_server, process_worker
from tests.deploy.prefect_processes import tail as log_tail

PREFECT_FILE = REPO / "deploy" / "prefect.yaml"
POOL = "gpu-h100"
FLAKY = "demo/flaky"
CONFIG = DEMO_CONFIG.model_copy(update={"num_prompts": 8, "repeats": 1})
# Short enough that the flaky server's hang ends the arm quickly as server_timeout.
TIMEOUTS = Timeouts(server_start_s=8, benchmark_s=60)
FLOW_RUN_TIMEOUT_S = 300


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(Prefect's database, isobench's database): two databases of one kind, as in compose."""
    if request.param == "sqlite":
        yield (
            f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
            f"sqlite:///{tmp_path / 'isobench-home' / 'isobench.db'}",
        )
        return
    with throwaway_postgres("prefect_test") as prefect_db, throwaway_postgres() as isobench_db:
        yield (
            prefect_db.replace("postgresql://", "postgresql+asyncpg://", 1),
            isobench_db.replace("postgresql://", "postgresql+psycopg://", 1),
        )


def _flaky_patch(demo_path: Path, parent: str, marker: Path) -> str:
    """An agent patch whose server hangs (never ready) while ``marker`` exists: a failure
    that the next attempt does not repeat, as a host's passing trouble."""
    old = subprocess.run(
        ["git", "show", f"{parent}:server.py"],
        cwd=demo_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    new = old.replace("import argparse\n", "import argparse\nimport os\n", 1).replace(
        "            ttft_ms=20.0,\n",
        f"            ttft_ms=20.0,\n            hang=os.path.exists({str(marker)!r}),\n",
        1,
    )
    assert new.count("hang=") == 1
    return server_diff(old, new)


def _home(tmp_path: Path, isobench_db: str) -> tuple[Path, Path]:
    """The GPU host's ISOBENCH_HOME: the demo's task and patches loaded, a flaky patch added,
    and an .env naming the database and the runtime. Returns (home, marker)."""
    home = tmp_path / "isobench-home"
    home.mkdir(exist_ok=True)
    demo = load_demo(home / "demo", isobench_db, max_patch_bytes=10**6)
    marker = tmp_path / "host-trouble"
    marker.touch()
    assert demo.task.parent_commit is not None
    patch = build_patch(
        agent=FLAKY,
        task_id=demo.task.task_id,
        data=_flaky_patch(demo.path, demo.task.parent_commit, marker).encode(),
        source_path="test:flaky",
        max_bytes=10**6,
    )
    with session_scope(isobench_db) as session:
        repository.add_patch(session=session, patch=patch)
    runtime = {
        "kind": "process",
        "repo": str(demo.path),
        "workdir": str(home / "work"),
        "server_command": SERVER_COMMAND,
    }
    (home / ".env").write_text(
        f"ISOBENCH_DATABASE_URL={isobench_db}\n"
        f"ISOBENCH_RUNTIME={json.dumps(runtime)}\n"
        "ISOBENCH_GPUS=0\n"
    )
    return home, marker


def _deploy(api: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [ISOBENCH, "deploy", "--prefect-file", str(PREFECT_FILE), "--gpu", "0"],
        env=clean_env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "deployer")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def _run(deployment: str, parameters: dict, worker_log: Path) -> FlowRun:
    async with get_client() as client:
        target = await client.read_deployment_by_name(deployment)
        run = await client.create_flow_run_from_deployment(target.id, parameters=parameters)
        deadline = time.monotonic() + FLOW_RUN_TIMEOUT_S
        while True:
            run = await client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                break
            assert time.monotonic() < deadline, f"{deployment} never ended:\n{log_tail(worker_log)}"
            await asyncio.sleep(1)
    assert run.state is not None and run.state.is_completed(), (
        f"{deployment}: {run.state}\n{log_tail(worker_log)}"
    )
    return run


def _latest(isobench_db: str) -> dict[str, tuple[str, int]]:
    """arm or agent -> (outcome, attempt) of the latest attempts."""
    with session_scope(isobench_db) as session:
        return {
            (r.agent.name if r.agent else r.arm): (r.outcome, r.attempt)
            for r in repository.latest_runs(session=session)
        }


async def _check_setup(expected_schedule: dict) -> None:
    async with get_client() as client:
        pool = await client.read_work_pool(POOL)
        assert pool.type == "process"
        limit = await client.read_global_concurrency_limit_by_name(
            f"isobench-gpu-{safe_name(socket.gethostname())}-0"
        )
        assert limit.limit == 1
        names = [
            "sweep/sweep",
            "three-way/three-way",
            "retry-failed/retry-failed",
            "nightly-rerun/nightly-rerun",
        ]
        for name in names:
            deployment = await client.read_deployment_by_name(name)
            assert deployment.work_pool_name == POOL
            assert deployment.pull_steps == [{"isobench.flows.deployments.enter_home": {}}]
        [zombies] = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
        assert zombies.trigger.posture.value == "Proactive"
        assert zombies.trigger.within.total_seconds() == 3 * 180  # Prefect's default heartbeat
        assert [a.type for a in zombies.actions] == ["change-flow-run-state"]
        assert zombies.actions[0].state.value == "CRASHED"
        nightly = await client.read_deployment_by_name("nightly-rerun/nightly-rerun")
        [schedule] = nightly.schedules
        assert schedule.slug == expected_schedule["slug"] and schedule.active
        assert schedule.schedule.cron == expected_schedule["cron"] == "30 2 * * *"
        assert schedule.schedule.timezone == expected_schedule["timezone"] == "Europe/Berlin"
        assert nightly.concurrency_options is not None
        assert nightly.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        # The server's scheduler has put the next nights on the calendar, at 02:30 in Berlin.
        deadline = time.monotonic() + 90
        while True:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[nightly.id]))
            )
            if runs:
                break
            assert time.monotonic() < deadline, "no nightly run was scheduled"
            await asyncio.sleep(1)
        berlin = ZoneInfo("Europe/Berlin")
        for run in runs:
            assert run.state is not None and run.state.is_scheduled()
            local = run.expected_start_time.astimezone(berlin)
            assert (local.hour, local.minute) == (2, 30)
            assert run.expected_start_time > datetime.now(UTC) - timedelta(minutes=1)
        assert len({r.expected_start_time for r in runs}) == len(runs)


async def _artifacts(run_id: UUID) -> list:
    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )


async def _task_runs(run_id: UUID) -> list:
    async with get_client() as client:
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )


async def _nightly_run_count() -> int:
    async with get_client() as client:
        nightly = await client.read_deployment_by_name("nightly-rerun/nightly-rerun")
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[nightly.id]))
        )
        return len(runs)


def test_deploy_then_sweep_and_retry_failed_through_the_api(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    prefect_db, isobench_db = databases
    home, marker = _home(tmp_path, isobench_db)
    expected = yaml.safe_load(PREFECT_FILE.read_text())
    [nightly_file] = [d for d in expected["deployments"] if d["name"] == "nightly-rerun"]

    with (
        prefect_server(prefect_db, tmp_path / "server-home") as api,
        temporary_settings(updates={PREFECT_API_URL: api}),
    ):
        printed = _deploy(api, tmp_path)
        assert f"work pool {POOL}: created (process)" in printed
        asyncio.run(_check_setup(nightly_file["schedules"][0]))
        scheduled = asyncio.run(_nightly_run_count())
        # Deploying again changes nothing: one schedule, no duplicated nights.
        assert f"work pool {POOL}: exists" in _deploy(api, tmp_path)
        asyncio.run(_check_setup(nightly_file["schedules"][0]))
        assert asyncio.run(_nightly_run_count()) == scheduled

        with process_worker(api, POOL, tmp_path / "worker-home", home) as worker_log:
            common = {
                "config": CONFIG.model_dump(mode="json"),
                "timeouts": TIMEOUTS.model_dump(mode="json"),
            }
            sweep = asyncio.run(
                _run(
                    "sweep/sweep",
                    {"selection": {"agents": ["demo/faster", FLAKY]}, **common},
                    worker_log,
                )
            )
            assert sweep.name == f"sweep {CONFIG.config_hash}"
            assert _latest(isobench_db) == {
                "baseline": ("success", 1),
                "human": ("success", 1),
                "demo/faster": ("success", 1),
                FLAKY: ("server_timeout", 1),
            }
            task_runs = asyncio.run(_task_runs(sweep.id))
            by_name = {t.name: t for t in task_runs}
            start = by_name["server-start human demo-0001"]
            assert {"arm:human", "task:demo-0001", "model:demo/sim-model"} <= set(start.tags)
            flaky_start = by_name[f"server-start agent demo-0001 {FLAKY}"]
            assert f"agent:{FLAKY}" in flaky_start.tags
            found = asyncio.run(_artifacts(sweep.id))
            keys = {a.key for a in found if a.key}
            assert {
                f"isobench-agents-{CONFIG.config_hash}",
                f"isobench-compare-{CONFIG.config_hash}",
            } <= keys
            [progress] = [a for a in found if a.type == "progress"]
            assert progress.data == 100
            [note] = [a for a in found if a.type == "markdown"]
            assert note.data.startswith(f"# server_timeout: agent demo-0001 {FLAKY}")

            marker.unlink()  # the host's trouble has passed
            retry = asyncio.run(_run("retry-failed/retry-failed", common, worker_log))
            assert retry.name == f"retry-failed {CONFIG.config_hash}"
            assert _latest(isobench_db) == {
                "baseline": ("success", 1),
                "human": ("success", 1),
                "demo/faster": ("success", 1),
                FLAKY: ("success", 2),
            }
            retried = {t.name for t in asyncio.run(_task_runs(retry.id))}
            assert f"benchmark agent demo-0001 {FLAKY}" in retried
            assert not any("human" in name or "baseline" in name for name in retried)
            tables = [a for a in asyncio.run(_artifacts(retry.id)) if a.type == "table"]
            compare = next(a for a in tables if a.key == f"isobench-compare-{CONFIG.config_hash}")
            rows = json.loads(compare.data) if isinstance(compare.data, str) else compare.data
            flaky_row = next(r for r in rows if r["agent"] == FLAKY)
            assert flaky_row["outcome"] == "success" and flaky_row["vs_baseline"] > 0
