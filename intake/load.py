"""Intake into the database: each command is one transaction that writes all or nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from isobench.intake import legacy
from isobench.intake.patches import FoundPatch, read_jsonl, scan_directory
from isobench.intake.rows import InputError, RowError
from isobench.intake.task_index import TaskIndex
from isobench.intake.task_list import load_task_file
from isobench.models.domain import Task
from isobench.store import repository
from isobench.store.repository import UpsertCounts


def load_tasks(*, session: Session, path: Path) -> tuple[list[Task], UpsertCounts]:
    tasks = load_task_file(path)
    counts = repository.upsert_tasks(session=session, tasks=tasks)
    return tasks, counts


@dataclass
class PatchLoadSummary:
    patches: list[FoundPatch] = field(default_factory=list)
    created: int = 0
    already: int = 0


def load_patches(
    *, session: Session, source: Path, agent: str | None, max_bytes: int
) -> PatchLoadSummary:
    index = TaskIndex(repository.list_tasks(session=session))
    if source.is_dir():
        if agent is None:
            raise InputError(
                [RowError(str(source), None, "agent", "--agent is required for a directory")]
            )
        found = scan_directory(source, agent=agent, index=index, max_bytes=max_bytes)
    else:
        found = read_jsonl(source, agent=agent, index=index, max_bytes=max_bytes)
    summary = PatchLoadSummary(patches=found)
    for item in found:
        _row, created = repository.add_patch(session=session, patch=item.patch)
        if created:
            summary.created += 1
        else:
            summary.already += 1
    return summary


@dataclass
class ImportSummary:
    files: int = 0
    imported: int = 0
    already: int = 0
    tasks_created: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)


def import_results(
    *, session: Session, root: Path, agent: str, log_limit: int, keep_going: bool = False
) -> ImportSummary:
    """Import every result file under ``root`` for ``agent``.

    Bad files stop the import before anything is written, with every error listed; with
    ``keep_going`` the good files are imported and the bad ones reported as rejected.
    """
    if not root.is_dir():
        raise InputError([RowError(str(root), None, None, "not a directory")])
    files, other = legacy.find_result_files(root)
    summary = ImportSummary(files=len(files), skipped_files=[str(p) for p in other])
    known = {t.task_id: t for t in repository.list_tasks(session=session)}
    parsed: list[tuple[legacy.ParsedFile, Task]] = []
    errors: list[RowError] = []
    for path, arm in files:
        try:
            item = legacy.parse_file(path, arm)
        except InputError as exc:
            errors.extend(exc.errors)
            continue
        task = legacy.task_for_record(item.record, known)
        if task is None:
            errors.append(
                RowError(
                    str(path),
                    None,
                    "human_commit_full",
                    f"unknown task {item.record.human_commit} and no full commit to create it",
                )
            )
            continue
        if task.task_id not in known:
            known[task.task_id] = task
            summary.tasks_created.append(task.task_id)
        parsed.append((item, task))
    if errors and not keep_going:
        raise InputError(errors)
    summary.rejected = errors
    if not files:
        raise InputError([RowError(str(root), None, None, "no *_result.json files found")])
    new_tasks = [known[t] for t in summary.tasks_created]
    repository.upsert_tasks(session=session, tasks=new_tasks)
    agent_row = repository.ensure_agent(session=session, name=agent)
    for item, task in sorted(parsed, key=lambda p: p[0].record.timestamp):
        run = legacy.to_run(item, task=task, agent=agent)
        if repository.run_exists(session=session, dedup_key=run.dedup_key):
            summary.already += 1
            continue
        prior = repository.count_attempts(
            session=session,
            task_id=run.task_id,
            arm=run.arm.value,
            agent_id=agent_row.id if run.agent else None,
            config_hash=run.config_hash,
        )
        repository.add_run(
            session=session,
            record=run.model_copy(update={"attempt": prior + 1}),
            log_tail_bytes=log_limit,
        )
        summary.imported += 1
        key = run.outcome.outcome.value
        summary.outcomes[key] = summary.outcomes.get(key, 0) + 1
    return summary
