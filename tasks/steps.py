"""The pipeline's Prefect tasks: thin wrappers that add names, tags, retries and NO_CACHE to
the plain step functions. Every measuring task opts out of caching, so a repeated measurement
is measured again and never answered from a cache.

Only ``infra_error`` is retried; every other outcome is final for its attempt. Timeouts are
enforced inside the steps (process kill, asyncio cancellation), not by Prefect, whose timeout
cannot stop blocking work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.settings import PREFECT_API_URL

from isobench.intake.load import load_tasks
from isobench.models.domain import BenchmarkConfig, PatchStatus, RunRecord
from isobench.models.metrics import Metrics
from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.runtimes.base import ArmJob, Prepared, ServerInfo
from isobench.runtimes.factory import RuntimeSpec, make_runtime
from isobench.store.engine import session_scope
from isobench.tasks.benchmark import parse_benchmark, parse_script, run_benchmark, run_script
from isobench.tasks.patch_apply import StepFailure
from isobench.tasks.patch_check import inspect_patch
from isobench.tasks.persist import persist_attempt
from isobench.tasks.server_start import start_and_wait

INFRA_RETRIES = 2
INFRA_RETRY_DELAYS = [10.0, 60.0]


def infra_only(_task: Any, _task_run: Any, state: Any) -> bool:
    """Retry a failed step only when it failed for infrastructure reasons."""
    try:
        state.result()
    except StepFailure as failure:
        return failure.outcome.outcome.is_retryable
    except Exception:  # anything unexpected is the machine's trouble until shown otherwise
        return True
    return False


def arm_tags(job: ArmJob) -> list[str]:
    """Tags of every task run of an arm, to filter the UI by arm, task, agent and model.

    None in Prefect's local mode (no PREFECT_API_URL): it has no UI to filter, and Prefect
    checks every new tag set for tag concurrency limits, which cost its throw-away SQLite
    server about 2 s per arm (the demo: 46-49 s with tags, 33-34 s without)."""
    if not PREFECT_API_URL.value():
        return []
    tags = [f"arm:{job.arm.value}", f"task:{job.task.task_id}"]
    if job.agent:
        tags.append(f"agent:{job.agent}")
    if job.task.model:
        tags.append(f"model:{job.task.model}")
    return tags


def _name(step: str) -> Callable[[], str]:
    """A run name like 'server-start human 9badee53', read from the task's ``job``."""

    def render() -> str:
        job: ArmJob = task_run.parameters["job"]
        return f"{step} {job.name}"

    return render


@task(name="patch-apply", task_run_name=_name("patch-apply"), cache_policy=NO_CACHE)
def check_patch(job: ArmJob, max_bytes: int) -> list[str]:
    """Refuse a patch that cannot be applied safely, before any checkout or build."""
    assert job.patch is not None
    found = inspect_patch((job.patch.diff or "").encode(), max_bytes=max_bytes)
    if job.patch.diff is None or found.status is not PatchStatus.OK:
        reason = job.patch.reason or found.reason
        raise StepFailure(
            OutcomeRecord(
                outcome=Outcome.PATCH_FAILED,
                reason=f"patch refused ({job.patch.status.value}): {reason}",
                evidence=reason,
            )
        )
    return [str(f) for f in found.flags]


# Steps that may meet infrastructure trouble retry it, with back-off; nothing else is retried.
RETRY_INFRA = {
    "retries": INFRA_RETRIES,
    "retry_delay_seconds": INFRA_RETRY_DELAYS,
    "retry_condition_fn": infra_only,
}


@task(name="image-build", task_run_name=_name("image-build"), cache_policy=NO_CACHE, **RETRY_INFRA)
def build(spec: RuntimeSpec, job: ArmJob) -> Prepared:
    return make_runtime(spec).prepare(job)


@task(
    name="server-start", task_run_name=_name("server-start"), cache_policy=NO_CACHE, **RETRY_INFRA
)
def start_server(
    spec: RuntimeSpec, job: ArmJob, prepared: Prepared, port: int, timeout_s: float
) -> tuple[ServerInfo, str]:
    return start_and_wait(make_runtime(spec), job, prepared, port, timeout_s)


@task(name="benchmark", task_run_name=_name("benchmark"), cache_policy=NO_CACHE, **RETRY_INFRA)
def benchmark(
    job: ArmJob, server: ServerInfo, model: str, config: BenchmarkConfig, timeout_s: float
) -> str:
    return run_benchmark(server.url, model, config, timeout_s)


@task(name="benchmark", task_run_name=_name("benchmark"), cache_policy=NO_CACHE, **RETRY_INFRA)
def benchmark_script(
    spec: RuntimeSpec, job: ArmJob, prepared: Prepared, port: int | None, timeout_s: float
) -> str:
    """The task's own benchmark script, against the arm's server (serving) or alone."""
    return run_script(make_runtime(spec), job, prepared, port, timeout_s)


@task(name="parse", task_run_name=_name("parse"), cache_policy=NO_CACHE)
def parse_script_output(job: ArmJob, output: str) -> Metrics:
    return parse_script(output)


@task(name="server-stop", task_run_name=_name("server-stop"), cache_policy=NO_CACHE)
def stop_server(spec: RuntimeSpec, job: ArmJob, server: ServerInfo) -> str:
    """Stop and remove the server; returns its log."""
    runtime = make_runtime(spec)
    log = runtime.logs(server)
    runtime.stop_server(server)
    return log


@task(name="parse", task_run_name=_name("parse"), cache_policy=NO_CACHE)
def parse(job: ArmJob, result_json: str) -> Metrics:
    return parse_benchmark(result_json)


@task(
    name="persist",
    task_run_name=_name("persist"),
    cache_policy=NO_CACHE,
    retries=INFRA_RETRIES,
    retry_delay_seconds=[1.0, 5.0],
)
def persist(job: ArmJob, db_url: str, record: RunRecord, log_tail_bytes: int) -> int:
    return persist_attempt(db_url, record, log_tail_bytes=log_tail_bytes)


@task(name="load-dataset", task_run_name="load-dataset {path}", cache_policy=NO_CACHE)
def load_dataset(path: str, db_url: str) -> list[str]:
    """Load a task file on this host (all rows or none) and return its task ids."""
    with session_scope(db_url) as session:
        tasks, _counts = load_tasks(session=session, path=Path(path))
    return [t.task_id for t in tasks]
