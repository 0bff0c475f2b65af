"""Keyword-only functions that read and write rows. Intake, pipeline and report go through
these; nobody else builds queries. Each takes the caller's session, so the caller decides
what is one transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from isobench.models.domain import AgentPatch, BenchmarkSpec, PatchStatus, RunRecord, Task
from isobench.models.outcomes import Outcome
from isobench.models.tables import AgentRow, MetricsRow, PatchRow, RunLogRow, RunRow, TaskRow

_HEX = re.compile(r"^[0-9a-f]{7,40}$")


class ConflictError(Exception):
    """The input contradicts what the database already holds."""


@dataclass(frozen=True)
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def _task_values(task: Task) -> dict[str, object]:
    return {
        "repo_url": task.repo_url,
        "human_commit": task.human_commit,
        "parent_commit": task.parent_commit,
        "model": task.model,
        "benchmark_kind": task.benchmark.kind.value if task.benchmark.kind else None,
        "benchmark_command": task.benchmark.command,
        "benchmark_mode": task.benchmark.mode_as_given,
        "gpus": task.gpus,
        "notes": task.notes,
        "aliases": list(task.aliases),
        "problems": list(task.problems),
        "warnings": list(task.warnings),
        "extra": dict(task.extra),
    }


def task_from_row(row: TaskRow) -> Task:
    return Task(
        task_id=row.task_id,
        repo_url=row.repo_url,
        human_commit=row.human_commit,
        parent_commit=row.parent_commit,
        model=row.model,
        benchmark=BenchmarkSpec(
            kind=row.benchmark_kind, command=row.benchmark_command, mode_as_given=row.benchmark_mode
        ),
        gpus=row.gpus,
        notes=row.notes,
        aliases=row.aliases,
        problems=row.problems,
        warnings=row.warnings,
        extra=row.extra,
    )


def upsert_tasks(*, session: Session, tasks: list[Task]) -> UpsertCounts:
    """Insert new tasks and update changed ones; a commit already held by another task id is
    a conflict (raised before anything is written in this session is committed)."""
    existing = {row.task_id: row for row in session.scalars(select(TaskRow))}
    by_commit = {row.human_commit: row.task_id for row in existing.values()}
    created = updated = unchanged = 0
    for task in tasks:
        holder = by_commit.get(task.human_commit)
        if holder is not None and holder != task.task_id:
            raise ConflictError(
                f"task {task.task_id}: commit {task.human_commit} is already task {holder}"
            )
        values = _task_values(task)
        row = existing.get(task.task_id)
        if row is None:
            row = TaskRow(task_id=task.task_id, **values)
            session.add(row)
            existing[task.task_id] = row
            by_commit[task.human_commit] = task.task_id
            created += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            by_commit.pop(row.human_commit, None)
            for key, value in values.items():
                setattr(row, key, value)
            by_commit[task.human_commit] = task.task_id
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return UpsertCounts(created, updated, unchanged)


def list_tasks(*, session: Session) -> list[Task]:
    return [task_from_row(r) for r in session.scalars(select(TaskRow).order_by(TaskRow.task_id))]


def resolve_task(*, session: Session, key: str) -> list[TaskRow]:
    """Tasks a name can mean: a task id, an alias, or a (prefix of a) human commit."""
    key = key.strip()
    row = session.get(TaskRow, key)
    if row is not None:
        return [row]
    rows = list(session.scalars(select(TaskRow)))
    by_alias = [r for r in rows if key in r.aliases]
    if by_alias:
        return by_alias
    if _HEX.match(key.lower()):
        return [r for r in rows if r.human_commit.startswith(key.lower())]
    return []


def ensure_agent(*, session: Session, name: str) -> AgentRow:
    row = session.scalar(select(AgentRow).where(AgentRow.name == name))
    if row is None:
        row = AgentRow(name=name)
        session.add(row)
        session.flush()
    return row


def add_patch(*, session: Session, patch: AgentPatch) -> tuple[PatchRow, bool]:
    """Store a patch once per (agent, task, content); returns the row and whether it is new."""
    agent = ensure_agent(session=session, name=patch.agent)
    row = session.scalar(
        select(PatchRow).where(
            PatchRow.agent_id == agent.id,
            PatchRow.task_id == patch.task_id,
            PatchRow.sha256 == patch.sha256,
        )
    )
    if row is not None:
        return row, False
    row = PatchRow(
        agent_id=agent.id,
        task_id=patch.task_id,
        sha256=patch.sha256,
        size_bytes=patch.size_bytes,
        diff=patch.diff,
        files_touched=list(patch.files_touched),
        status=patch.status.value,
        reason=patch.reason,
        flags=list(patch.flags),
        source_path=patch.source_path,
    )
    session.add(row)
    session.flush()
    return row, True


def run_exists(*, session: Session, dedup_key: str) -> bool:
    return session.scalar(select(RunRow.id).where(RunRow.dedup_key == dedup_key)) is not None


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def log_tail(stream: str, text: str, limit: int) -> RunLogRow:
    """The last ``limit`` bytes of a log (where a failure shows), with its original size."""
    data = text.encode("utf-8")
    kept = data[-limit:].decode("utf-8", "ignore") if len(data) > limit else text
    return RunLogRow(
        stream=stream, text=kept, original_bytes=len(data), truncated=len(data) > limit
    )


def add_run(*, session: Session, record: RunRecord, log_tail_bytes: int) -> tuple[RunRow, bool]:
    """Store one attempt with its metrics and log tails, unless its dedup key is stored."""
    if not record.dedup_key:
        raise ValueError("a run record needs its dedup key before it is stored")
    row = session.scalar(select(RunRow).where(RunRow.dedup_key == record.dedup_key))
    if row is not None:
        return row, False
    agent = ensure_agent(session=session, name=record.agent) if record.agent else None
    patch_id = None
    if record.patch_sha256 and agent is not None:
        patch_id = session.scalar(
            select(PatchRow.id).where(
                PatchRow.agent_id == agent.id,
                PatchRow.task_id == record.task_id,
                PatchRow.sha256 == record.patch_sha256,
            )
        )
    outcome = record.outcome
    row = RunRow(
        dedup_key=record.dedup_key,
        task_id=record.task_id,
        arm=record.arm.value,
        agent_id=agent.id if agent else None,
        patch_id=patch_id,
        config_hash=record.config_hash,
        config=record.config,
        attempt=record.attempt,
        source=record.source.value,
        outcome=outcome.outcome.value,
        cause=outcome.cause.value if outcome.cause else None,
        reason=outcome.reason,
        evidence=outcome.evidence,
        started_at=_utc(record.started_at),
        finished_at=_utc(record.finished_at),
        duration_s=record.duration_s,
        host=record.host,
        gpu=record.gpu,
        image_ref=record.image_ref,
        image_digest=record.image_digest,
        orchestration_run_id=record.orchestration_run_id,
        model=record.model,
        client=record.client,
        flags=[str(f) for f in record.flags],
        step_timings=record.step_timings,
    )
    if record.metrics is not None and not record.metrics.is_empty():
        row.metrics = MetricsRow(
            **record.metrics.model_dump(exclude={"extras"}), extras=record.metrics.extras
        )
    row.logs = [log_tail(stream, text, log_tail_bytes) for stream, text in record.logs.items()]
    session.add(row)
    session.flush()
    return row, True


def count_attempts(
    *, session: Session, task_id: str, arm: str, agent_id: int | None, config_hash: str
) -> int:
    query = select(func.count(RunRow.id)).where(
        RunRow.task_id == task_id,
        RunRow.arm == arm,
        RunRow.config_hash == config_hash,
        RunRow.agent_id.is_(None) if agent_id is None else RunRow.agent_id == agent_id,
    )
    return session.scalar(query) or 0


def latest_runs(
    *, session: Session, agent: str | None = None, config_hash: str | None = None
) -> list[RunRow]:
    """The latest attempt per (task, arm, agent, config): what a report counts.

    "Latest" is the newest start time, then the highest id, so a retried attempt replaces
    the one before it.
    """
    rank = (
        func.row_number()
        .over(
            partition_by=(RunRow.task_id, RunRow.arm, RunRow.agent_id, RunRow.config_hash),
            order_by=(RunRow.started_at.desc().nulls_last(), RunRow.id.desc()),
        )
        .label("rank")
    )
    ranked = select(RunRow.id, rank).subquery()
    query = (
        select(RunRow)
        .join(ranked, ranked.c.id == RunRow.id)
        .where(ranked.c.rank == 1)
        .options(selectinload(RunRow.agent), selectinload(RunRow.metrics))
        .order_by(RunRow.task_id, RunRow.arm, RunRow.id)
    )
    if agent is not None:
        query = query.join(AgentRow, AgentRow.id == RunRow.agent_id).where(AgentRow.name == agent)
    if config_hash is not None:
        query = query.where(RunRow.config_hash == config_hash)
    return list(session.scalars(query))


def latest_attempt(
    *,
    session: Session,
    task_id: str,
    arm: str,
    agent: str | None,
    config_hash: str,
    image_digest: str,
) -> RunRow | None:
    """The newest attempt of exactly this measurement (same code, same config)."""
    query = select(RunRow).where(
        RunRow.task_id == task_id,
        RunRow.arm == arm,
        RunRow.config_hash == config_hash,
        RunRow.image_digest == image_digest,
    )
    if agent is None:
        query = query.where(RunRow.agent_id.is_(None))
    else:
        query = query.join(AgentRow, AgentRow.id == RunRow.agent_id).where(AgentRow.name == agent)
    return session.scalars(query.order_by(RunRow.id.desc()).limit(1)).first()


def agent_patches(*, session: Session, task_id: str, agents: list[str] | None) -> list[AgentPatch]:
    """The newest patch of each agent (or of the named ones) for a task."""
    query = (
        select(PatchRow)
        .join(AgentRow, AgentRow.id == PatchRow.agent_id)
        .where(PatchRow.task_id == task_id)
        .order_by(PatchRow.id)
    )
    if agents is not None:
        query = query.where(AgentRow.name.in_(agents))
    newest: dict[str, PatchRow] = {}
    for row in session.scalars(query):
        newest[row.agent.name] = row
    return [
        AgentPatch(
            agent=name,
            task_id=row.task_id,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            diff=row.diff,
            files_touched=row.files_touched,
            status=PatchStatus(row.status),
            reason=row.reason,
            flags=row.flags,
            source_path=row.source_path,
        )
        for name, row in sorted(newest.items())
    ]


def run_by_id(*, session: Session, run_id: int) -> RunRow | None:
    return session.get(RunRow, run_id, options=[selectinload(RunRow.metrics)])


def previous_success(*, session: Session, run: RunRow) -> RunRow | None:
    """The newest successful attempt before ``run`` of the same measurement (task, arm,
    agent, config, image)."""
    query = (
        select(RunRow)
        .where(
            RunRow.task_id == run.task_id,
            RunRow.arm == run.arm,
            RunRow.config_hash == run.config_hash,
            RunRow.image_digest == run.image_digest,
            RunRow.outcome == Outcome.SUCCESS.value,
            RunRow.id < run.id,
        )
        .options(selectinload(RunRow.metrics))
        .order_by(RunRow.id.desc())
        .limit(1)
    )
    if run.agent_id is None:
        query = query.where(RunRow.agent_id.is_(None))
    else:
        query = query.where(RunRow.agent_id == run.agent_id)
    return session.scalars(query).first()


def agent_names(*, session: Session) -> set[str]:
    return set(session.scalars(select(AgentRow.name)))
