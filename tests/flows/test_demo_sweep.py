"""The demo's sweep through the whole pipeline (process runtime, SQLite, a Prefect server):
outcomes, throughput order, reuse, and resuming after SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

from isobench.demo.repo import BENCHMARK_COMMAND, EXPECTED, SERVER_COMMAND
from isobench.demo.run import DEMO_CONFIG, load_demo, run_demo
from isobench.flows.pipeline import gpu_limit_name, retry_failed, sweep, three_way
from isobench.models.domain import BenchmarkClient, Selection
from isobench.models.outcomes import Outcome
from isobench.runtimes.process import ProcessRuntimeSpec
from isobench.store import repository
from isobench.store.engine import session_scope

ISOBENCH = str(Path(sys.executable).parent / "isobench")


def _outcomes(results: list[dict]) -> dict[str, str]:
    return {r["agent"] or r["arm"]: r["outcome"] for r in results}


def _throughput(results: list[dict]) -> dict[str, float]:
    return {
        r["agent"] or r["arm"]: r["output_throughput"] for r in results if r["output_throughput"]
    }


def _run_count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_demo_outcomes_ratios_and_reuse(prefect_api: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    first = run_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    outcomes = _outcomes(first.results)
    assert outcomes == {"baseline": "success", "human": "success", **EXPECTED}
    tput = _throughput(first.results)
    assert tput["demo/faster"] > 1.15 * tput["human"]
    assert tput["human"] > 1.15 * tput["baseline"]
    assert 0.9 < tput["demo/as-fast"] / tput["human"] < 1.1
    assert 0.9 < tput["demo/no-gain"] / tput["baseline"] < 1.1
    assert not any(r["reused"] for r in first.results)
    crash = next(r for r in first.results if r["agent"] == "demo/crash")
    assert "No module named 'fused_decode_kernels'" in crash["reason"]

    second = run_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    assert all(r["reused"] for r in second.results)
    spec = ProcessRuntimeSpec(
        repo=str(tmp_path / "w" / "repo"),
        workdir=str(tmp_path / "w" / "runtime"),
        server_command=SERVER_COMMAND,
    )
    one_task = three_way(task="demo-0001", runtime=spec, config=DEMO_CONFIG, database_url=db)
    assert len(one_task) == 7 and all(r["reused"] for r in one_task)
    with session_scope(db) as session:
        latest = repository.latest_runs(session=session)
        assert len(latest) == 7
        human = next(r for r in latest if r.arm == "human")
        assert human.image_digest.startswith("git:") and human.step_timings["benchmark"] > 0
        assert human.metrics is not None and human.metrics.extras["repeats"] == 2
        assert {log.stream for log in human.logs} >= {"server", "client"}
    assert _run_count(tmp_path / "demo.db") == 7
    assert not list((tmp_path / "w" / "runtime" / "servers").glob("*.json"))


def test_sweep_killed_half_way_finishes_the_rest(prefect_api: str, tmp_path: Path) -> None:
    # The embedded default: SQLite in the working directory.
    db_file = tmp_path / "isobench.db"
    command = [ISOBENCH, "demo", "--workdir", str(tmp_path / "w")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISOBENCH_")}
    env["PREFECT_API_URL"] = prefect_api
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while _run_count(db_file) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, "the demo ended before it could be interrupted"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the orchestrator dies; its servers are not its group
    proc.wait()
    # A real Prefect server's repossessor frees a dead holder's GPU slot once its 60 s lease
    # ends; the test server runs no services, so do the repossessor's part here.
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(
            gpu_limit_name("0"), GlobalConcurrencyLimitUpdate(active_slots=0)
        )
    killed_at = _run_count(db_file)
    assert 2 <= killed_at < 7
    servers = tmp_path / "w" / "runtime" / "servers"
    strays = [int(p.stem) for p in servers.glob("*.json")]

    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{killed_at} reused" in done.stdout
    assert _run_count(db_file) == 7  # each arm once: nothing redone, nothing twice
    with sqlite3.connect(db_file) as conn:
        keys = conn.execute("SELECT task_id, arm, agent_id, count(*) FROM runs GROUP BY 1, 2, 3")
        assert all(count == 1 for *_k, count in keys)
    assert not list(servers.glob("*.json"))
    for pid in strays:  # a server of the killed run was stopped by the next one
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_sweep_with_the_tasks_own_benchmark_script(prefect_api: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'script.db'}"
    demo = load_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    config = DEMO_CONFIG.model_copy(update={"client": BenchmarkClient.SCRIPT, "repeats": 1})
    spec = ProcessRuntimeSpec(
        repo=str(demo.path), workdir=str(tmp_path / "w" / "runtime"), server_command=SERVER_COMMAND
    )
    results = sweep(
        runtime=spec, config=config, database_url=db, selection=Selection(tasks=[demo.task.task_id])
    )
    assert _outcomes(results) == {"baseline": "success", "human": "success", **EXPECTED}
    tput = _throughput(results)
    assert tput["demo/faster"] > tput["human"] > tput["baseline"]
    with session_scope(db) as session:
        human = next(r for r in repository.latest_runs(session=session) if r.arm == "human")
        assert human.client == BENCHMARK_COMMAND
        assert "Serving Benchmark Result" in next(
            log.text for log in human.logs if log.stream == "client"
        )


def test_retry_failed_and_artifacts(prefect_api: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'retry.db'}"
    first = run_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    spec = ProcessRuntimeSpec(
        repo=str(tmp_path / "w" / "repo"),
        workdir=str(tmp_path / "w" / "runtime"),
        server_command=SERVER_COMMAND,
    )
    chosen = [Outcome.PATCH_FAILED, Outcome.SERVER_CRASHED]
    for attempt in (2, 3):
        again = retry_failed(
            runtime=spec, config=DEMO_CONFIG, database_url=db, outcomes=chosen, max_attempts=3
        )
        assert sorted(r["agent"] for r in again) == ["demo/bad-patch", "demo/crash"]
        assert _outcomes(again) == {
            "demo/bad-patch": "patch_failed",
            "demo/crash": "server_crashed",
        }
        with session_scope(db) as session:
            latest = {
                r.agent.name: r.attempt for r in repository.latest_runs(session=session) if r.agent
            }
        assert latest["demo/crash"] == attempt and latest["demo/faster"] == 1
    # Three attempts reached: nothing left to retry; the default outcomes pick none here either.
    assert retry_failed(runtime=spec, config=DEMO_CONFIG, database_url=db, outcomes=chosen) == []
    assert retry_failed(runtime=spec, config=DEMO_CONFIG, database_url=db) == []
    assert _run_count(tmp_path / "retry.db") == 7 + 2 + 2

    async def read_artifacts() -> list:
        async with get_client() as client:
            return await client.read_artifacts()

    found = asyncio.run(read_artifacts())
    keys = {a.key for a in found if a.key}
    assert f"isobench-agents-{first.config_hash}" in keys
    assert f"isobench-compare-{first.config_hash}" in keys
    notes = [a for a in found if a.type == "markdown" and "demo/crash" in (a.description or "")]
    assert notes and "fused_decode_kernels" in notes[0].data
    assert any(a.type == "progress" for a in found)
