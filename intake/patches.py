"""Find agent patches on disk or in a JSON Lines file and check each one.

Patches that are empty, binary, not unified diffs or too large are kept as records with a
reason (the agent produced them; later runs of them end as patch_failed), never dropped.
A patch whose task cannot be told from its path is an error that names the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from isobench.intake.rows import InputError, RowError, jsonl_objects, read_text
from isobench.intake.task_index import TaskIndex
from isobench.models.domain import AgentName, AgentPatch, PatchStatus
from isobench.tasks.patch_check import inspect_patch

PATCH_SUFFIXES = (".patch", ".diff")
_AGENT = TypeAdapter(AgentName)


@dataclass(frozen=True)
class FoundPatch:
    patch: AgentPatch
    where: str


def _agent_name(value: object, where: str, row: int | None) -> str:
    try:
        return _AGENT.validate_python(value)
    except ValidationError as exc:
        raise InputError(
            [
                RowError(
                    where, row, "agent", f"invalid agent name {value!r}: {exc.errors()[0]['msg']}"
                )
            ]
        ) from exc


def build_patch(
    *, agent: str, task_id: str, data: bytes, source_path: str | None, max_bytes: int
) -> AgentPatch:
    found = inspect_patch(data, max_bytes=max_bytes)
    keep_text = found.status is not PatchStatus.TOO_LARGE and found.status is not PatchStatus.BINARY
    return AgentPatch(
        agent=agent,
        task_id=task_id,
        sha256=found.sha256,
        size_bytes=found.size_bytes,
        diff=data.decode("utf-8") if keep_text else None,
        files_touched=found.files_touched,
        status=found.status,
        reason=found.reason,
        flags=[str(f) for f in found.flags],
        source_path=source_path,
    )


def scan_directory(root: Path, *, agent: str, index: TaskIndex, max_bytes: int) -> list[FoundPatch]:
    """One patch per task under ``root``; the task is named somewhere in each file's path."""
    agent = _agent_name(agent, str(root), None)
    if not root.is_dir():
        raise InputError([RowError(str(root), None, None, "not a directory")])
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in PATCH_SUFFIXES)
    errors: list[RowError] = []
    chosen: dict[str, Path] = {}
    for path in files:
        rel = path.relative_to(root)
        ids = index.from_path(list(rel.parts))
        if not ids:
            errors.append(
                RowError(
                    str(path),
                    None,
                    None,
                    "unknown task: no task id, alias or "
                    "commit prefix of a loaded task in this path",
                )
            )
        elif len(ids) > 1:
            errors.append(
                RowError(
                    str(path), None, None, f"ambiguous path: names tasks {', '.join(sorted(ids))}"
                )
            )
        else:
            (task_id,) = ids
            if task_id in chosen:
                errors.append(
                    RowError(
                        str(path),
                        None,
                        None,
                        f"second patch for task {task_id} (first: {chosen[task_id]})",
                    )
                )
            else:
                chosen[task_id] = path
    if errors:
        raise InputError(errors)
    if not chosen:
        raise InputError(
            [RowError(str(root), None, None, f"no patch files ({', '.join(PATCH_SUFFIXES)}) found")]
        )
    return [
        FoundPatch(
            build_patch(
                agent=agent,
                task_id=task_id,
                data=path.read_bytes(),
                source_path=str(path),
                max_bytes=max_bytes,
            ),
            str(path),
        )
        for task_id, path in sorted(chosen.items())
    ]


def read_jsonl(
    path: Path, *, agent: str | None, index: TaskIndex, max_bytes: int
) -> list[FoundPatch]:
    """Rows of ``{"task": ..., "agent": ..., "patch": ...}``; ``agent`` fills rows without one."""
    name = str(path)
    rows, errors = jsonl_objects(name, read_text(path))
    out: list[FoundPatch] = []
    seen: dict[tuple[str, str], int] = {}
    for rowno, row in rows:
        task_key = row.get("task") or row.get("task_id")
        text = row.get("patch", row.get("diff"))
        who = row.get("agent") or agent
        missing = [f for f, v in (("task", task_key), ("patch", text), ("agent", who)) if v is None]
        for field in missing:
            errors.append(RowError(name, rowno, field, "missing"))
        if missing:
            continue
        if not isinstance(text, str):
            errors.append(RowError(name, rowno, "patch", "must be a string"))
            continue
        ids = index.lookup(str(task_key))
        if len(ids) != 1:
            problem = "unknown task" if not ids else f"ambiguous: {', '.join(sorted(ids))}"
            errors.append(RowError(name, rowno, "task", f"{problem} ({task_key})"))
            continue
        try:
            who = _agent_name(who, name, rowno)
        except InputError as exc:
            errors.extend(exc.errors)
            continue
        (task_id,) = ids
        if (who, task_id) in seen:
            errors.append(
                RowError(
                    name,
                    rowno,
                    "task",
                    f"duplicate of row {seen[(who, task_id)]} for {who}/{task_id}",
                )
            )
            continue
        seen[(who, task_id)] = rowno
        out.append(
            FoundPatch(
                build_patch(
                    agent=who,
                    task_id=task_id,
                    data=text.encode("utf-8"),
                    source_path=f"{name}:{rowno}",
                    max_bytes=max_bytes,
                ),
                f"{name}, row {rowno}",
            )
        )
    if errors:
        raise InputError(sorted(errors, key=lambda e: e.row or 0))
    return out
