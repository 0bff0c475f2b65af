"""GPU slots: an arm takes whichever of the host's GPUs is free, so a GPU held elsewhere (by
another flow on the host) is passed over instead of waited for."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.concurrency.sync import concurrency

from isobench.demo.repo import SERVER_COMMAND
from isobench.demo.run import DEMO_CONFIG, DEMO_TIMEOUTS, load_demo
from isobench.flows.pipeline import ensure_gpu_limits, gpu_groups, gpu_limit_name, sweep
from isobench.models.domain import Arm, Selection
from isobench.runtimes.process import ProcessRuntimeSpec
from isobench.store import repository
from isobench.store.engine import session_scope


def test_gpu_groups_are_aligned_neighbours() -> None:
    gpus = ["0", "1", "2", "3"]
    assert gpu_groups(gpus, 1) == [["0"], ["1"], ["2"], ["3"]]
    assert gpu_groups(gpus, 2) == [["0", "1"], ["2", "3"]]
    assert gpu_groups(gpus, 3) == [["0", "1", "2"]]
    assert gpu_groups(gpus, 8) == []


def test_a_busy_gpu_is_passed_over(prefect_api: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'gpus.db'}"
    demo = load_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    spec = ProcessRuntimeSpec(
        repo=str(demo.path), workdir=str(tmp_path / "runtime"), server_command=SERVER_COMMAND
    )
    gpus = ["0", "1"]
    ensure_gpu_limits(gpus)
    # Another flow on this host is measuring on GPU 0 for the whole sweep.
    with concurrency(gpu_limit_name("0"), occupy=1, strict=True, lease_duration=60):
        results = sweep(
            selection=Selection(arms=[Arm.BASELINE, Arm.HUMAN]),
            config=DEMO_CONFIG.model_copy(update={"num_prompts": 8, "repeats": 1}),
            timeouts=DEMO_TIMEOUTS,
            runtime=spec,
            gpus=gpus,
            database_url=db,
        )
    assert [r["outcome"] for r in results] == ["success", "success"]
    with session_scope(db) as session:
        runs = repository.latest_runs(session=session)
        assert [(r.arm, r.gpu) for r in runs] == [("baseline", "1"), ("human", "1")]
        assert all(r.step_timings["gpu-wait"] < 5 for r in runs)


def test_a_host_set_to_measure_two_arms_at_once_uses_both_gpus(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISOBENCH_PARALLEL_ARMS", "2")
    db = f"sqlite:///{tmp_path / 'parallel.db'}"
    demo = load_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    spec = ProcessRuntimeSpec(
        repo=str(demo.path), workdir=str(tmp_path / "runtime"), server_command=SERVER_COMMAND
    )
    results = sweep(
        selection=Selection(agents=["demo/faster", "demo/crash"]),
        config=DEMO_CONFIG.model_copy(update={"num_prompts": 16, "repeats": 1}),
        timeouts=DEMO_TIMEOUTS,
        runtime=spec,
        gpus=["0", "1"],
        database_url=db,
    )
    assert {r["agent"] or r["arm"]: r["outcome"] for r in results} == {
        "baseline": "success",
        "human": "success",
        "demo/faster": "success",
        "demo/crash": "server_crashed",
    }
    with session_scope(db) as session:
        runs = sorted(repository.latest_runs(session=session), key=lambda r: r.started_at)
        assert {r.gpu for r in runs} == {"0", "1"}
        # The first two arms were measured side by side, each on its own GPU.
        first, second = runs[0], runs[1]
        assert second.started_at < first.finished_at and first.gpu != second.gpu
