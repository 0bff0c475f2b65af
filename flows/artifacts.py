"""What a sweep shows in the Prefect UI: its progress, the per-agent table, the per-task
comparison, and one note per failed arm with its outcome, cause and log excerpt."""

from __future__ import annotations

from dataclasses import asdict
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.report import compare, drift
from isobench.report import summary as report_summary
from isobench.runtimes.base import ArmJob
from isobench.store import repository
from isobench.store.engine import session_scope


class Progress:
    """A progress bar on the flow run that moves as arms finish."""

    def __init__(self, total: int, what: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.what = what
        self.id: UUID = create_progress_artifact(0.0, description=f"{what}: 0 of {total} arms")

    def advance(self) -> None:
        self.done += 1
        update_progress_artifact(
            self.id,
            100.0 * self.done / self.total,
            description=f"{self.what}: {self.done} of {self.total} arms",
        )


def failed_arm(job: ArmJob, outcome: OutcomeRecord, run_id: int) -> None:
    cause = f" ({outcome.cause.value})" if outcome.cause else ""
    # No indentation in the markdown: indented lines render as code blocks.
    text = "\n".join(
        [
            f"# {outcome.outcome.value}{cause}: {job.name}",
            "",
            f"**Reason:** {outcome.reason}",
            "",
            f"Run {run_id}, config {job.config.config_hash}.",
            "",
            "```",
            outcome.evidence or "(no log lines)",
            "```",
        ]
    )
    create_markdown_artifact(text, description=f"{job.name}: {outcome.outcome.value}")


def sweep_tables(db_url: str, config_hash: str) -> None:
    with session_scope(db_url) as session:
        latest = repository.latest_runs(session=session, config_hash=config_hash)
        summaries = report_summary.summarize_runs(latest)
        lines = compare.compare(latest)
    create_table_artifact(
        [s.as_dict() for s in summaries],
        key=f"isobench-agents-{config_hash}",
        description="Results per agent: the latest attempt per task, arm and config",
    )
    create_table_artifact(
        [asdict(line) for line in lines],
        key=f"isobench-compare-{config_hash}",
        description="Per task: every arm against baseline and human",
    )


def drift_table(db_url: str, run_ids: list[int], threshold: float) -> list[drift.DriftLine]:
    """Each re-measured run against the last success of the same image and config, as a table
    artifact keyed per config; returns the lines (those with ``drifted`` are the news)."""
    lines: list[drift.DriftLine] = []
    config_hash = None
    with session_scope(db_url) as session:
        for run_id in run_ids:
            now = repository.run_by_id(session=session, run_id=run_id)
            if now is None or now.outcome != Outcome.SUCCESS.value:
                continue
            config_hash = now.config_hash
            before = repository.previous_success(session=session, run=now)
            if before is not None:
                lines += drift.drift(before, now, threshold)
    if config_hash is not None:
        create_table_artifact(
            [asdict(line) for line in lines],
            key=f"isobench-drift-{config_hash}",
            description=f"Baseline and human measured again: change against the last "
            f"measurement of the same image (drift: beyond {threshold:.0%} and the noise)",
        )
    return lines
