"""The process runtime on the demo repository: checkout and patch, a real server process,
crashes and time-outs classified, process groups always stopped, strays swept up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench.demo.repo import SERVER_COMMAND, build_demo_repo
from isobench.intake.patches import build_patch
from isobench.models.domain import Arm, BenchmarkConfig, BenchmarkKind, BenchmarkSpec
from isobench.models.outcomes import CrashCause, Outcome
from isobench.runtimes.base import ArmJob
from isobench.runtimes.process import ProcessRuntime, ProcessRuntimeSpec
from isobench.tasks.benchmark import parse_benchmark, parse_script, run_benchmark, run_script
from isobench.tasks.patch_apply import StepFailure
from isobench.tasks.server_start import start_and_wait
from tests.integration.sim import free_port

CONFIG = BenchmarkConfig(input_len=16, output_len=8, num_prompts=6, request_rate=None, repeats=2)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return build_demo_repo(tmp_path_factory.mktemp("demo") / "repo")


def runtime(demo, tmp_path: Path, command: list[str] = SERVER_COMMAND) -> ProcessRuntime:
    return ProcessRuntime(
        ProcessRuntimeSpec(repo=str(demo.path), workdir=str(tmp_path / "w"), server_command=command)
    )


def job(demo, arm: Arm = Arm.BASELINE, agent: str | None = None) -> ArmJob:
    patch = None
    if agent:
        patch = build_patch(
            agent=agent,
            task_id=demo.task.task_id,
            data=demo.patches[agent].encode(),
            source_path=None,
            max_bytes=10**6,
        )
    return ArmJob(task=demo.task, arm=arm, agent=agent, patch=patch, config=CONFIG, run_label="t")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_prepare_checks_out_applies_and_caches(demo, tmp_path: Path) -> None:
    rt = runtime(demo, tmp_path)
    agent = job(demo, Arm.AGENT, "demo/faster")
    first = rt.prepare(agent)
    assert first.apply_method == "git-apply" and not first.cache_hit
    assert first.image_digest == f"git:{demo.task.parent_commit}+patch:{agent.patch.sha256[:16]}"
    assert "DECODE_STEP_MS = 6.0" in (Path(first.image_ref) / "server.py").read_text()
    assert rt.prepare(agent).cache_hit
    human = rt.prepare(job(demo, Arm.HUMAN))
    assert "DECODE_STEP_MS = 8.0" in (Path(human.image_ref) / "server.py").read_text()
    with pytest.raises(StepFailure) as exc:
        rt.prepare(job(demo, Arm.AGENT, "demo/bad-patch"))
    assert exc.value.outcome.outcome is Outcome.PATCH_FAILED


def test_measure_a_real_server_and_stop_it(demo, tmp_path: Path) -> None:
    rt = runtime(demo, tmp_path)
    arm = job(demo, Arm.HUMAN)
    server, model = start_and_wait(rt, arm, rt.prepare(arm), free_port(), timeout_s=30)
    try:
        assert model == "demo/sim-model"
        result = run_benchmark(server.url, model, CONFIG, timeout_s=60)
    finally:
        rt.stop_server(server)
    metrics = parse_benchmark(result)
    assert metrics.completed == 6 and metrics.extras["repeats"] == 2
    assert "request_throughput_cv" in metrics.extras
    assert metrics.median_itl_ms == pytest.approx(8.0 + 0.5 * 5, rel=0.25)
    assert rt.exit_code(server) is not None and not alive(int(server.handle))
    assert not list((tmp_path / "w" / "servers").glob("*.json"))


def test_crash_on_start_is_classified(demo, tmp_path: Path) -> None:
    rt = runtime(demo, tmp_path)
    arm = job(demo, Arm.AGENT, "demo/crash")
    with pytest.raises(StepFailure) as exc:
        start_and_wait(rt, arm, rt.prepare(arm), free_port(), timeout_s=30)
    outcome = exc.value.outcome
    assert (outcome.outcome, outcome.cause) == (Outcome.SERVER_CRASHED, CrashCause.IMPORT_ERROR)
    assert "No module named 'fused_decode_kernels'" in outcome.evidence
    assert "exit code 1" in outcome.reason


def test_server_that_never_answers_times_out_and_is_killed(demo, tmp_path: Path) -> None:
    # A server that starts a child of its own and never listens: the whole group must go.
    sleeper = [
        sys.executable,
        "-c",
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(300)']); print('loading', flush=True); time.sleep(300)",
    ]
    rt = runtime(demo, tmp_path, sleeper)
    arm = job(demo)
    started = time.monotonic()
    with pytest.raises(StepFailure) as exc:
        start_and_wait(rt, arm, rt.prepare(arm), free_port(), timeout_s=2)
    assert time.monotonic() - started < 15
    assert exc.value.outcome.outcome is Outcome.SERVER_TIMEOUT
    assert "loading" in exc.value.outcome.evidence
    leftovers = subprocess.run(
        ["pgrep", "-f", "time.sleep\\(300\\)"], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == ""


def test_strays_of_a_dead_run_are_swept(demo, tmp_path: Path) -> None:
    rt = runtime(demo, tmp_path)
    arm = job(demo)
    server = rt.start_server(arm, rt.prepare(arm), free_port())
    record_path = tmp_path / "w" / "servers" / f"{server.handle}.json"
    record = json.loads(record_path.read_text())
    dead = subprocess.Popen(["true"])
    dead.wait()
    record_path.write_text(json.dumps(record | {"owner": dead.pid}))  # its sweep died
    # The next run, or the same flow run retried (same label): its server is a stray either way.
    fresh = runtime(demo, tmp_path)
    assert fresh.sweep_stale() == [server.handle]
    deadline = time.monotonic() + 10
    while alive(int(server.handle)) and time.monotonic() < deadline:
        rt.exit_code(server)  # reap
        time.sleep(0.05)
    assert not alive(int(server.handle))
    assert not record_path.exists()


def test_stop_labelled_stops_one_runs_servers(demo, tmp_path: Path) -> None:
    rt = runtime(demo, tmp_path)
    mine = job(demo).model_copy(update={"run_label": "cancelled-run"})
    other = job(demo, Arm.HUMAN).model_copy(update={"run_label": "other-run"})
    a = rt.start_server(mine, rt.prepare(mine), free_port())
    b = rt.start_server(other, rt.prepare(other), free_port())
    try:
        assert rt.stop_labelled("cancelled-run") == [a.handle]
        assert rt.exit_code(a) is not None and rt.exit_code(b) is None
    finally:
        rt.stop_server(b)


def _with_command(arm: ArmJob, kind: BenchmarkKind, command: str) -> ArmJob:
    task = arm.task.model_copy(update={"benchmark": BenchmarkSpec(kind=kind, command=command)})
    return arm.model_copy(update={"task": task})


def test_the_tasks_own_script_against_the_arms_server(demo, tmp_path: Path) -> None:
    rt = runtime(demo, tmp_path)
    arm = job(demo, Arm.AGENT, "demo/faster")
    prepared = rt.prepare(arm)
    port = free_port()
    server, _model = start_and_wait(rt, arm, prepared, port, timeout_s=30)
    try:
        output = run_script(rt, arm, prepared, port, timeout_s=60)
    finally:
        rt.stop_server(server)
    metrics = parse_script(output)
    assert metrics.completed == 16 and metrics.failed == 0
    assert metrics.median_itl_ms == pytest.approx(6.0 + 0.3 * 7, rel=0.25)


def test_offline_script_timeout_and_failure(demo, tmp_path: Path) -> None:
    rt = runtime(demo, tmp_path)
    arm = job(demo)
    prepared = rt.prepare(arm)
    offline = _with_command(
        arm,
        BenchmarkKind.THROUGHPUT,
        "python -c \"print('Throughput: 8.42 requests/s, 9262.13 total tokens/s')\"",
    )
    assert parse_script(run_script(rt, offline, prepared, None, 30)).requests_per_second == 8.42
    slow = _with_command(arm, BenchmarkKind.LATENCY, "python -c 'import time; time.sleep(60)'")
    with pytest.raises(StepFailure) as exc:
        run_script(rt, slow, prepared, None, timeout_s=1)
    assert exc.value.outcome.outcome is Outcome.BENCHMARK_TIMEOUT
    broken = _with_command(
        arm, BenchmarkKind.LATENCY, "python -c 'raise ValueError(\"bad kernel\")'"
    )
    with pytest.raises(StepFailure) as exc:
        run_script(rt, broken, prepared, None, timeout_s=30)
    assert exc.value.outcome.outcome is Outcome.BENCHMARK_FAILED
    assert "ValueError: bad kernel" in exc.value.outcome.reason
    silent = _with_command(arm, BenchmarkKind.LATENCY, "python -c 'print(\"done\")'")
    with pytest.raises(StepFailure) as exc:
        parse_script(run_script(rt, silent, prepared, None, timeout_s=30))
    assert exc.value.outcome.outcome is Outcome.NO_METRICS
    assert "last lines: done" in exc.value.outcome.reason


def test_a_server_sees_only_the_gpus_of_its_slots(demo, tmp_path: Path) -> None:
    show = [
        sys.executable,
        "-c",
        "import os, time; "
        "print('gpus', os.environ.get('CUDA_VISIBLE_DEVICES'), flush=True); time.sleep(30)",
    ]
    rt = runtime(demo, tmp_path, show)
    arm = job(demo).model_copy(update={"gpus": ["1", "2"]})
    server = rt.start_server(arm, rt.prepare(arm), free_port())
    try:
        deadline = time.monotonic() + 10
        while "gpus" not in rt.logs(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "gpus 1,2" in rt.logs(server)
    finally:
        rt.stop_server(server)
