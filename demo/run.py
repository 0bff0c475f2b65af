"""Run the demo: build its repository, load its task and patches, sweep all arms with the
process runtime, and return what the sweep did."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from isobench.demo.repo import SERVER_COMMAND, DemoRepo, build_demo_repo
from isobench.intake.patches import build_patch
from isobench.models.domain import BenchmarkConfig, Selection, Timeouts
from isobench.store import migrate, repository
from isobench.store.engine import session_scope

# Small enough to finish in well under a minute, large enough to tell the arms apart.
DEMO_CONFIG = BenchmarkConfig(
    input_len=64,
    output_len=32,
    num_prompts=24,
    request_rate=None,
    max_concurrency=8,
    repeats=2,
    warmup_requests=1,
)
DEMO_TIMEOUTS = Timeouts(server_start_s=60, benchmark_s=120)


def prefect_local_mode(workdir: Path) -> None:
    """Prefect's local mode, kept inside the demo's folder. Must run before prefect is imported:
    its settings are read once."""
    home = Path(os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect")))
    home.mkdir(parents=True, exist_ok=True)
    # The ephemeral SQLite server's telemetry service trips over its own locks.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Failed arms are the demo's point; its tables show them, Prefect's tracebacks need not.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


@dataclass
class DemoResult:
    results: list[dict[str, object]]
    config_hash: str


def load_demo(workdir: Path, db_url: str, *, max_patch_bytes: int) -> DemoRepo:
    """Build the demo repository and load its task and agent patches into the database."""
    repo = build_demo_repo(workdir / "repo")
    migrate.upgrade(db_url)
    with session_scope(db_url) as session:
        repository.upsert_tasks(session=session, tasks=[repo.task])
        for agent, diff in repo.patches.items():
            patch = build_patch(
                agent=agent,
                task_id=repo.task.task_id,
                data=diff.encode(),
                source_path=f"demo:{agent}",
                max_bytes=max_patch_bytes,
            )
            repository.add_patch(session=session, patch=patch)
    return repo


def run_demo(
    workdir: Path, db_url: str, *, max_patch_bytes: int, force: bool = False
) -> DemoResult:
    from isobench.flows.pipeline import sweep
    from isobench.runtimes.process import ProcessRuntimeSpec

    repo = load_demo(workdir, db_url, max_patch_bytes=max_patch_bytes)
    spec = ProcessRuntimeSpec(
        repo=str(repo.path), workdir=str(workdir / "runtime"), server_command=SERVER_COMMAND
    )
    results = sweep(
        selection=Selection(tasks=[repo.task.task_id]),
        config=DEMO_CONFIG,
        force=force,
        timeouts=DEMO_TIMEOUTS,
        runtime=spec,
        database_url=db_url,
    )
    return DemoResult(results, DEMO_CONFIG.config_hash)
