"""The three-way flows: for each task, baseline, human and every agent's patch, side by side.

``three_way`` runs the arms of one task, ``sweep`` the arms of many, ``retry_failed`` the
arms whose latest attempt failed in a chosen way, ``nightly_rerun`` baseline and human again
(host drift) and the agent arms never tried (new patches). All plan first (which
arms still need measuring), then submit every build at once, so image builds (CPU) overlap
benchmarks (GPU), and measure arm after arm (or the host's ISOBENCH_PARALLEL_ARMS at once),
each holding the slots of whichever GPUs are free, a Prefect global concurrency limit of 1
per GPU, around server start, benchmark and clean-up alike.

Reuse: an arm whose exact measurement (task, arm, agent, config hash, image digest) already
ended in a final outcome is not run again (unless ``force``), so a second sweep measures
baseline and human once, and a sweep killed half-way finishes only what is left. Only
``infra_error`` is retried. Every attempt is persisted as soon as it ends.
"""

from __future__ import annotations

import contextvars
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from prefect import flow, get_client, get_run_logger, tags
from prefect.concurrency.sync import concurrency
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from pydantic import TypeAdapter

from isobench.flows import artifacts
from isobench.models.domain import (
    Arm,
    BenchmarkClient,
    BenchmarkConfig,
    BenchmarkKind,
    RunRecord,
    Selection,
    Task,
    Timeouts,
)
from isobench.models.metrics import Metrics
from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.models.settings import Settings
from isobench.models.tables import RunRow
from isobench.runtimes.base import ArmJob, Prepared, safe_name
from isobench.runtimes.factory import RuntimeSpec, make_runtime
from isobench.runtimes.host import HostSettings, host_gpus, host_runtime
from isobench.store import repository
from isobench.store.engine import session_scope
from isobench.tasks import steps
from isobench.tasks.loadgen import CLIENT_NAME
from isobench.tasks.patch_apply import StepFailure
from isobench.tasks.server_start import free_port


@dataclass
class ArmResult:
    job: ArmJob
    outcome: Outcome
    reason: str = ""
    reused: bool = False
    run_id: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)


# A killed orchestrator cannot release its GPU slot; the slot's lease then runs out. Prefect's
# minimum lease keeps that wait short (the holder renews the lease while it lives).
GPU_LEASE_S = 60.0


def gpu_limit_name(gpu: str, host: str | None = None) -> str:
    """One limit per GPU of a host (default: this one): GPU 0 of two hosts are two GPUs."""
    return f"isobench-gpu-{safe_name(host or socket.gethostname())}-{gpu}"


def ensure_gpu_limits(gpus: list[str], host: str | None = None) -> None:
    """One slot per GPU: at most one server on a GPU at a time, across flows and hosts."""
    with get_client(sync_client=True) as client:
        for gpu in gpus:
            client.upsert_global_concurrency_limit_by_name(gpu_limit_name(gpu, host), limit=1)


GPU_POLL_S = 2.0


def gpu_groups(gpus: list[str], count: int) -> list[list[str]]:
    """The GPU sets an arm on ``count`` GPUs may take: neighbours, aligned (0-1, 2-3, ...),
    as tensor parallelism wants GPUs that share a switch."""
    return [gpus[i : i + count] for i in range(0, len(gpus) - count + 1, count)]


# How long to try for a set of GPUs that looked free (another flow may have just taken it).
GPU_TRY_S = 5.0


def _looks_free(names: list[str]) -> bool:
    with get_client(sync_client=True) as client:
        for name in names:
            limit = client.read_global_concurrency_limit_by_name(name)
            if limit.active_slots >= limit.limit:
                return False
    return True


# The lanes of one flow choose their GPUs one at a time, so they never race for the same one.
_CHOOSING = threading.Lock()


def _take_first_free(groups: list[list[str]], stack: ExitStack) -> list[str] | None:
    for group in groups:
        names = [gpu_limit_name(g) for g in group]
        if not _looks_free(names):
            continue
        try:
            stack.enter_context(
                concurrency(
                    names,
                    occupy=1,
                    strict=True,
                    lease_duration=GPU_LEASE_S,
                    timeout_seconds=GPU_TRY_S,
                )
            )
        except TimeoutError:  # another flow took it in the meantime
            continue
        return group
    return None


@contextmanager
def free_gpus(gpus: list[str], count: int, poll_s: float = GPU_POLL_S) -> Iterator[list[str]]:
    """Hold the slots of ``count`` of this host's GPUs, whichever set is free first, for the
    block: never two servers on one GPU, and a second flow or lane on the host takes the next
    GPU instead of queueing behind the first."""
    groups = gpu_groups(gpus, count)
    if not groups:
        raise ValueError(f"{count} GPUs wanted; this host offers {len(gpus)}")
    # A slot released a moment ago shows as free some tens of ms later: look again soon at
    # first, then every ``poll_s``.
    delay = 0.05
    while True:
        stack = ExitStack()
        with _CHOOSING:
            group = _take_first_free(groups, stack)
        if group is not None:
            with stack:
                yield group
            return
        time.sleep(delay)
        delay = min(poll_s, delay * 2)


def _skip_reason(task: Task, gpus: list[str]) -> str | None:
    if task.problems:
        return "task cannot run as given: " + "; ".join(task.problems)
    if task.gpus > len(gpus):
        return f"task needs {task.gpus} GPUs; this host offers {len(gpus)}"
    return None


class Reuse(StrEnum):
    """What a plan does with an arm measured before (same task, arm, agent, config, image)."""

    FINAL = "final"  # keep a final outcome; run again one that may pass next time
    NONE = "none"  # measure again
    ANY = "any"  # keep any attempt: run only arms never tried


@dataclass
class Plan:
    run: list[ArmJob] = field(default_factory=list)
    reused: list[ArmResult] = field(default_factory=list)
    skipped: list[tuple[ArmJob, str]] = field(default_factory=list)


def _keep(latest: RunRow | None, policy: Reuse) -> bool:
    if latest is None or policy is Reuse.NONE:
        return False
    return policy is Reuse.ANY or not Outcome(latest.outcome).is_retryable


def plan_jobs(
    *,
    db_url: str,
    selection: Selection,
    config: BenchmarkConfig,
    spec: RuntimeSpec,
    gpus: list[str],
    label: str,
    reuse: dict[Arm, Reuse] | None = None,
) -> Plan:
    """Every selected arm of every selected task: run, reused or skipped. ``reuse`` sets the
    policy per arm (default: keep final outcomes)."""
    runtime = make_runtime(spec)
    plan = Plan()
    policies = reuse or {}
    with session_scope(db_url) as session:
        tasks = repository.list_tasks(session=session)
        if selection.tasks is not None:
            wanted = set(selection.tasks)
            missing = wanted - {t.task_id for t in tasks}
            if missing:
                raise ValueError(f"unknown task(s): {', '.join(sorted(missing))}")
            tasks = [t for t in tasks if t.task_id in wanted]
        if selection.agents is not None:
            unknown = set(selection.agents) - repository.agent_names(session=session)
            if unknown:
                raise ValueError(f"no patches loaded for agent(s): {', '.join(sorted(unknown))}")
        for task in tasks:
            jobs = [
                ArmJob(task=task, arm=arm, config=config, run_label=label)
                for arm in (Arm.BASELINE, Arm.HUMAN)
                if arm in selection.arms
            ]
            if Arm.AGENT in selection.arms:
                jobs += [
                    ArmJob(
                        task=task,
                        arm=Arm.AGENT,
                        agent=p.agent,
                        patch=p,
                        config=config,
                        run_label=label,
                    )
                    for p in repository.agent_patches(
                        session=session, task_id=task.task_id, agents=selection.agents
                    )
                ]
            reason = _skip_reason(task, gpus)
            for job in jobs:
                digest = "-" if reason else runtime.identity(job)
                latest = repository.latest_attempt(
                    session=session,
                    task_id=task.task_id,
                    arm=job.arm.value,
                    agent=job.agent,
                    config_hash=config.config_hash,
                    image_digest=digest,
                )
                if latest is not None and _keep(latest, policies.get(job.arm, Reuse.FINAL)):
                    plan.reused.append(
                        ArmResult(job, Outcome(latest.outcome), latest.reason, True, latest.id)
                    )
                elif reason:
                    plan.skipped.append((job, reason))
                else:
                    plan.run.append(job.model_copy(update={"digest": digest}))
    return plan


def _record(
    job: ArmJob,
    outcome: OutcomeRecord,
    *,
    started: datetime,
    prepared: Prepared | None,
    digest: str,
    metrics: Metrics | None,
    model: str | None,
    logs: dict[str, str],
    timings: dict[str, float],
    flags: list[str],
    gpus: list[str] | None = None,
) -> RunRecord:
    finished = datetime.now(UTC)
    return RunRecord(
        task_id=job.task.task_id,
        arm=job.arm,
        agent=job.agent,
        patch_sha256=job.patch.sha256 if job.patch else None,
        config_hash=job.config.config_hash,
        config=job.config.model_dump(mode="json"),
        outcome=outcome,
        metrics=metrics,
        started_at=started,
        finished_at=finished,
        duration_s=(finished - started).total_seconds(),
        host=socket.gethostname(),
        gpu=",".join(gpus) if gpus else None,
        image_ref=prepared.image_ref if prepared else None,
        image_digest=prepared.image_digest if prepared else digest,
        orchestration_run_id=str(flow_run.id) if flow_run.id else None,
        model=model,
        client=(
            job.task.benchmark.command
            if job.config.client is BenchmarkClient.SCRIPT
            else CLIENT_NAME
        ),
        flags=sorted(set(flags)),
        step_timings=timings,
        logs={k: v for k, v in logs.items() if v},
    )


def _measure_arm(
    spec: RuntimeSpec,
    job: ArmJob,
    build: PrefectFuture[Prepared] | None,
    *,
    gpus: list[str],
    timeouts: Timeouts,
    db_url: str,
    settings: Settings,
) -> ArmResult:
    started = datetime.now(UTC)
    timings: dict[str, float] = {}
    logs: dict[str, str] = {}
    flags: list[str] = []
    prepared: Prepared | None = None
    metrics: Metrics | None = None
    model: str | None = None
    held: list[str] = []
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[step] = round(now - clock, 3)
        clock = now

    try:
        if build is None:
            raise RuntimeError("no build was submitted for this arm")
        prepared = build.result()
        flags += prepared.flags
        logs.update(prepared.logs)
        lap("image-build-wait")
        with free_gpus(gpus, job.task.gpus) as held:
            lap("gpu-wait")
            on_gpus = job.model_copy(update={"gpus": held})
            metrics, model = _run_benchmark(spec, on_gpus, prepared, timeouts, logs, lap)
        outcome = OutcomeRecord(outcome=Outcome.SUCCESS, reason="measured")
    except StepFailure as failure:
        outcome = failure.outcome
        logs.update(failure.logs)
    except Exception as exc:  # the orchestrator's own trouble must not stop other arms
        outcome = OutcomeRecord(
            outcome=Outcome.INFRA_ERROR, reason=f"{type(exc).__name__}: {exc}"[:500]
        )
    record = _record(
        job,
        outcome,
        started=started,
        prepared=prepared,
        digest=job.digest,
        metrics=metrics,
        model=model,
        logs=logs,
        timings=timings,
        flags=flags,
        gpus=held,
    )
    run_id = steps.persist(job, db_url, record, settings.log_tail_bytes)
    if outcome.outcome is not Outcome.SUCCESS:
        artifacts.failed_arm(job, outcome, run_id)
    return ArmResult(
        job, outcome.outcome, outcome.reason, False, run_id, metrics.flat() if metrics else {}
    )


def _run_benchmark(
    spec: RuntimeSpec,
    job: ArmJob,
    prepared: Prepared,
    timeouts: Timeouts,
    logs: dict[str, str],
    lap: Callable[[str], None],
) -> tuple[Metrics, str | None]:
    """Server start, benchmark, server stop, parse; the server is stopped whatever happens.
    The task's own script runs without a server for the offline kinds."""
    script = job.config.client is BenchmarkClient.SCRIPT
    if script and job.task.benchmark.kind in (BenchmarkKind.THROUGHPUT, BenchmarkKind.LATENCY):
        output = steps.benchmark_script(spec, job, prepared, None, timeouts.benchmark_s)
        logs["client"] = output
        lap("benchmark")
        metrics = steps.parse_script_output(job, output)
        lap("parse")
        return metrics, None
    port = free_port()
    server, model = steps.start_server(spec, job, prepared, port, timeouts.server_start_s)
    lap("server-start")
    try:
        if script:
            output = steps.benchmark_script(spec, job, prepared, port, timeouts.benchmark_s)
        else:
            output = steps.benchmark(job, server, model, job.config, timeouts.benchmark_s)
        logs["client"] = output
        lap("benchmark")
    finally:
        logs["server"] = steps.stop_server(spec, job, server)
        lap("server-stop")
    metrics = steps.parse_script_output(job, output) if script else steps.parse(job, output)
    lap("parse")
    return metrics, model


def _build_or_check(spec: RuntimeSpec, job: ArmJob, settings: Settings) -> PrefectFuture[Prepared]:
    with tags(*steps.arm_tags(job)):
        if job.patch is not None:
            steps.check_patch(job, settings.max_patch_bytes)
        return steps.build.submit(spec, job)


def run_plan(
    plan: Plan,
    *,
    spec: RuntimeSpec,
    db_url: str,
    gpus: list[str],
    timeouts: Timeouts,
    parallel: int = 1,
) -> list[ArmResult]:
    """Persist the skipped arms, start every build, then measure the arms, ``parallel`` at a
    time (each on its own GPUs)."""
    settings = Settings(database_url=db_url)
    results = list(plan.reused)
    progress = artifacts.Progress(len(plan.run) + len(plan.skipped), "measured")
    for job, reason in plan.skipped:
        record = _record(
            job,
            OutcomeRecord(outcome=Outcome.SKIPPED, reason=reason),
            started=datetime.now(UTC),
            prepared=None,
            digest="-",
            metrics=None,
            model=None,
            logs={},
            timings={},
            flags=[],
        )
        with tags(*steps.arm_tags(job)):
            run_id = steps.persist(job, db_url, record, settings.log_tail_bytes)
        results.append(ArmResult(job, Outcome.SKIPPED, reason, False, run_id))
        progress.advance()
    builds: dict[int, PrefectFuture[Prepared] | StepFailure] = {}
    for index, job in enumerate(plan.run):
        try:
            builds[index] = _build_or_check(spec, job, settings)
        except StepFailure as failure:
            builds[index] = failure

    def finish(job: ArmJob, built: PrefectFuture[Prepared] | StepFailure) -> ArmResult:
        with tags(*steps.arm_tags(job)):
            if not isinstance(built, StepFailure):
                return _measure_arm(
                    spec, job, built, gpus=gpus, timeouts=timeouts, db_url=db_url, settings=settings
                )
            record = _record(
                job,
                built.outcome,
                started=datetime.now(UTC),
                prepared=None,
                digest=job.digest,
                metrics=None,
                model=None,
                logs=built.logs,
                timings={},
                flags=[],
            )
            run_id = steps.persist(job, db_url, record, settings.log_tail_bytes)
        artifacts.failed_arm(job, built.outcome, run_id)
        return ArmResult(job, built.outcome.outcome, built.outcome.reason, False, run_id)

    lanes = max(1, min(parallel, len(plan.run)))
    if lanes == 1:
        # In the flow's own thread: in a lane's thread the demo's arms waited about 2 s more
        # here and there on the Prefect API, a price only parallel lanes should pay.
        measured = []
        for index, job in enumerate(plan.run):
            measured.append(finish(job, builds[index]))
            progress.advance()
        return results + measured
    # Each lane measures one arm at a time on whichever GPUs are free; a copy of the flow's
    # context per arm keeps its task runs in this flow run.
    with ThreadPoolExecutor(lanes, thread_name_prefix="isobench-arm") as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, finish, job, builds[index])
            for index, job in enumerate(plan.run)
        ]
        for _done in as_completed(futures):
            progress.advance()
    return results + [f.result() for f in futures]


def _prepare_run(spec: RuntimeSpec, gpus: list[str]) -> str:
    label = str(flow_run.id or "local")
    make_runtime(spec).sweep_stale()
    ensure_gpu_limits(gpus)
    return label


def stop_run_servers(_flow: object, run: object, _state: object) -> None:
    """Cancellation and crash hook: a cancel does not reach servers (containers are dockerd's
    children, processes have their own group), so stop every server of this run here."""
    given = run.parameters.get("runtime")  # type: ignore[attr-defined]
    spec = host_runtime(TypeAdapter(RuntimeSpec).validate_python(given) if given else None)
    make_runtime(spec).stop_labelled(str(run.id))  # type: ignore[attr-defined]


# Every flow that starts servers stops them when it is cancelled or crashes.
_SERVER_FLOW: dict[str, Any] = {
    "log_prints": True,
    "on_cancellation": [stop_run_servers],
    "on_crashed": [stop_run_servers],
}


@dataclass
class Where:
    """Where a flow runs its arms: the runtime, GPUs and database, from the flow's parameters
    or else the worker host's settings."""

    runtime: RuntimeSpec
    gpus: list[str]
    database_url: str
    parallel_arms: int = 1

    @classmethod
    def resolve(
        cls, runtime: RuntimeSpec | None, gpus: list[str] | None, database_url: str | None
    ) -> Where:
        host = HostSettings()
        return cls(
            host_runtime(runtime, host),
            host_gpus(gpus, host),
            database_url or Settings().database_url,
            host.parallel_arms,
        )


def _with_dataset(selection: Selection, db_url: str) -> Selection:
    """A selection naming a dataset file: load it, then measure its tasks (or those of them
    the selection names)."""
    if selection.dataset is None:
        return selection
    loaded = steps.load_dataset(selection.dataset, db_url)
    tasks = [t for t in loaded if selection.tasks is None or t in selection.tasks]
    return selection.model_copy(update={"tasks": tasks})


def _execute(
    selection: Selection,
    config: BenchmarkConfig,
    where: Where,
    *,
    timeouts: Timeouts,
    reuse: dict[Arm, Reuse] | None = None,
    only: set[tuple[str, str, str | None]] | None = None,
) -> list[ArmResult]:
    """Plan, run and publish; ``only`` keeps just those (task, arm, agent)."""
    selection = _with_dataset(selection, where.database_url)
    label = _prepare_run(where.runtime, where.gpus)
    plan = plan_jobs(
        db_url=where.database_url,
        selection=selection,
        config=config,
        spec=where.runtime,
        gpus=where.gpus,
        label=label,
        reuse=reuse,
    )
    if only is not None:

        def chosen(job: ArmJob) -> bool:
            return (job.task.task_id, job.arm.value, job.agent) in only

        plan = Plan(
            run=[j for j in plan.run if chosen(j)],
            skipped=[(j, why) for j, why in plan.skipped if chosen(j)],
        )
    results = run_plan(
        plan,
        spec=where.runtime,
        db_url=where.database_url,
        gpus=where.gpus,
        timeouts=timeouts,
        parallel=where.parallel_arms,
    )
    artifacts.sweep_tables(where.database_url, config.config_hash)
    get_run_logger().info("%s", outcome_line(results))
    return results


def outcome_line(results: list[ArmResult]) -> str:
    """'7 arms (5 run, 2 reused): success 5, patch_failed 1, server_crashed 1'."""
    reused = sum(1 for r in results if r.reused)
    counts = Counter(r.outcome.value for r in results)
    spread = ", ".join(f"{outcome} {n}" for outcome, n in counts.most_common())
    return f"{len(results)} arms ({len(results) - reused} run, {reused} reused): {spread or '-'}"


def _all_or_none(force: bool) -> dict[Arm, Reuse]:
    return dict.fromkeys(Arm, Reuse.NONE if force else Reuse.FINAL)


@flow(name="sweep", flow_run_name="sweep {config.config_hash}", **_SERVER_FLOW)
def sweep(
    selection: Selection = Selection(),
    config: BenchmarkConfig = BenchmarkConfig(),
    force: bool = False,
    timeouts: Timeouts = Timeouts(),
    runtime: RuntimeSpec | None = None,
    gpus: list[str] | None = None,
    database_url: str | None = None,
) -> list[dict[str, object]]:
    """Measure the selected arms of every selected task (default: all loaded tasks, all arms).

    An arm measured before with the same config and image is reused unless ``force``.
    ``runtime``, ``gpus`` and ``database_url`` default to the worker host's ISOBENCH_*
    settings."""
    where = Where.resolve(runtime, gpus, database_url)
    results = _execute(selection, config, where, timeouts=timeouts, reuse=_all_or_none(force))
    return [summary(r) for r in results]


def _three_way_name() -> str:
    """'three-way 9badee53 trae/gpt-5': the task, and the agents when some are named."""
    params = flow_run.parameters
    return " ".join(["three-way", str(params["task"]), *(params.get("agents") or [])])


@flow(name="three-way", flow_run_name=_three_way_name, **_SERVER_FLOW)
def three_way(
    task: str,
    agents: list[str] | None = None,
    config: BenchmarkConfig = BenchmarkConfig(),
    force: bool = False,
    timeouts: Timeouts = Timeouts(),
    runtime: RuntimeSpec | None = None,
    gpus: list[str] | None = None,
    database_url: str | None = None,
) -> list[dict[str, object]]:
    """Measure one task's baseline, human and agent arms (all agents unless named)."""
    selection = Selection(tasks=[task], agents=agents)
    return sweep.fn(selection, config, force, timeouts, runtime, gpus, database_url)


def summary(result: ArmResult) -> dict[str, object]:
    return {
        "task": result.job.task.task_id,
        "arm": result.job.arm.value,
        "agent": result.job.agent,
        "outcome": result.outcome.value,
        "reason": result.reason,
        "reused": result.reused,
        "run_id": result.run_id,
        "output_throughput": result.metrics.get("output_throughput"),
    }


RETRY_OUTCOMES = (
    Outcome.INFRA_ERROR,
    Outcome.SERVER_TIMEOUT,
    Outcome.BENCHMARK_TIMEOUT,
    Outcome.NO_METRICS,
)


def select_failed(
    db_url: str, config_hash: str, outcomes: list[Outcome], max_attempts: int
) -> set[tuple[str, str, str | None]]:
    """(task, arm, agent) whose latest attempt of this config ended in one of ``outcomes``
    and that has had fewer than ``max_attempts`` attempts."""
    wanted = {o.value for o in outcomes}
    with session_scope(db_url) as session:
        return {
            (r.task_id, r.arm, r.agent.name if r.agent else None)
            for r in repository.latest_runs(session=session, config_hash=config_hash)
            if r.outcome in wanted and r.attempt < max_attempts
        }


@flow(name="retry-failed", flow_run_name="retry-failed {config.config_hash}", **_SERVER_FLOW)
def retry_failed(
    outcomes: tuple[Outcome, ...] = RETRY_OUTCOMES,
    max_attempts: int = 3,
    selection: Selection = Selection(),
    config: BenchmarkConfig = BenchmarkConfig(),
    timeouts: Timeouts = Timeouts(),
    runtime: RuntimeSpec | None = None,
    gpus: list[str] | None = None,
    database_url: str | None = None,
) -> list[dict[str, object]]:
    """Run again only the arms whose latest attempt with ``config`` failed in one of
    ``outcomes`` (default: infra_error, server_timeout, benchmark_timeout, no_metrics) and
    that have had fewer than ``max_attempts`` attempts."""
    where = Where.resolve(runtime, gpus, database_url)
    wanted = select_failed(where.database_url, config.config_hash, list(outcomes), max_attempts)
    results = _execute(
        selection,
        config,
        where,
        timeouts=timeouts,
        reuse=_all_or_none(True),
        only=wanted,
    )
    return [summary(r) for r in results]


def _nightly_name() -> str:
    """'nightly-rerun 2026-11-25': the scheduled day, so a rerun of one night reads as such."""
    when = flow_run.scheduled_start_time or datetime.now(UTC)
    return f"nightly-rerun {when:%Y-%m-%d}"


# Baseline and human are measured again to see the host drift; of the agents, only arms never
# tried (patches that arrived since the last run) are measured.
NIGHTLY_REUSE = {Arm.BASELINE: Reuse.NONE, Arm.HUMAN: Reuse.NONE, Arm.AGENT: Reuse.ANY}


@flow(name="nightly-rerun", flow_run_name=_nightly_name, **_SERVER_FLOW)
def nightly_rerun(
    selection: Selection = Selection(),
    config: BenchmarkConfig = BenchmarkConfig(),
    drift_threshold: float = 0.05,
    timeouts: Timeouts = Timeouts(),
    runtime: RuntimeSpec | None = None,
    gpus: list[str] | None = None,
    database_url: str | None = None,
) -> list[dict[str, object]]:
    """Re-measure baseline and human of the chosen tasks and compare each with the last
    measurement of the same image: a change beyond ``drift_threshold`` (a fraction) and
    beyond twice the repeats' spread is the host drifting. Measure the agent arms never
    tried: patches that arrived since the last run."""
    where = Where.resolve(runtime, gpus, database_url)
    results = _execute(selection, config, where, timeouts=timeouts, reuse=NIGHTLY_REUSE)
    measured = [
        r.run_id
        for r in results
        if r.run_id is not None and not r.reused and r.job.arm is not Arm.AGENT
    ]
    lines = artifacts.drift_table(where.database_url, measured, drift_threshold)
    logger = get_run_logger()
    for line in lines:
        if line.drifted:
            logger.warning("drift: %s", line.describe())
    return [summary(r) for r in results]
