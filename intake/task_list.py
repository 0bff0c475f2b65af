"""Read task lists (JSON, JSON Lines or CSV) into validated tasks.

A bad row is an error naming the file, the row and the field; all errors of a file are
collected so the user fixes them in one pass. A row that is well-formed but cannot be run
(no parent, no model, a template command, a command that serves another model) loads with
its ``problems`` listed, so a user sees which rows cannot run and why.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from isobench.intake.rows import InputError, RowError, jsonl_objects, read_text
from isobench.models.domain import BenchmarkKind, BenchmarkSpec, Task

# Source columns that map onto Task fields; the rest of a row is kept in Task.extra.
_ALIASES = {
    "task_id": ("task_id", "id"),
    "human_commit": ("human_commit", "commit", "human_commit_full"),
    "parent_commit": ("parent_commit", "parent"),
    "model": ("model",),
    "command": ("perf_command", "benchmark_command", "command"),
    "mode": ("benchmark_mode", "benchmark_kind", "kind"),
    "repo_url": ("repo_url", "repo"),
    "gpus": ("gpus", "gpu_count"),
    "notes": ("notes",),
    "aliases": ("aliases",),
}

_SCRIPT_KINDS = {
    "benchmark_serving.py": BenchmarkKind.SERVING,
    "bench serve": BenchmarkKind.SERVING,
    "benchmark_throughput.py": BenchmarkKind.THROUGHPUT,
    "bench throughput": BenchmarkKind.THROUGHPUT,
    "benchmark_latency.py": BenchmarkKind.LATENCY,
    "bench latency": BenchmarkKind.LATENCY,
}
_MODE_KINDS = {
    "serving": BenchmarkKind.SERVING,
    "throughput": BenchmarkKind.THROUGHPUT,
    "latency": BenchmarkKind.LATENCY,
}
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")
_PATCH_ALIAS = re.compile(r"(vllm_core-\d+)")


def read_rows(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
    """Rows of a JSON, JSONL or CSV file with their 1-based row numbers, and the rows that
    could not be read (a file that cannot be read at all raises)."""
    name = str(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        rows = [
            (i, {k: (v if v != "" else None) for k, v in row.items() if k is not None})
            for i, row in enumerate(reader, start=1)
        ]
        return rows, []
    if suffix in (".jsonl", ".ndjson"):
        return jsonl_objects(name, text)
    if suffix == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                [RowError(name, None, None, f"malformed JSON at line {exc.lineno}: {exc.msg}")]
            ) from exc
        if isinstance(value, dict) and isinstance(value.get("tasks"), list):
            value = value["tasks"]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise InputError(
                [RowError(name, None, None, "expected a list of objects or {'tasks': [...]}")]
            )
        return list(enumerate(value, start=1)), []
    raise InputError(
        [RowError(name, None, None, f"unknown format {suffix!r}: use .json, .jsonl or .csv")]
    )


def _pick(row: dict[str, Any], field: str) -> Any:
    for key in _ALIASES[field]:
        if row.get(key) is not None:
            return row[key]
    return None


def _command_args(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def command_kind(command: str) -> BenchmarkKind | None:
    for marker, kind in _SCRIPT_KINDS.items():
        if marker in command:
            return kind
    return None


def _tensor_parallel(args: list[str]) -> int | None:
    value = _option(args, "-tp", "--tensor-parallel-size", "--tensor_parallel_size")
    return int(value) if value and value.isdigit() else None


def assess(task: Task) -> tuple[list[str], list[str]]:
    """What stops a task from running (problems) and where its source disagrees (warnings)."""
    problems: list[str] = []
    warnings: list[str] = []
    if task.parent_commit is None:
        problems.append("no parent commit: the baseline arm cannot be built")
    if not task.model:
        problems.append("no model given")
    elif task.model.strip().lower() == "unknown":
        problems.append("model is 'unknown'")
    command = task.benchmark.command
    if not command:
        problems.append("no benchmark command")
        return problems, warnings
    args = _command_args(command)
    placeholders = sorted(
        {a for a in args if _PLACEHOLDER.match(a) and "=" not in a and a not in ("VLLM",)}
    )
    if placeholders:
        problems.append(
            f"benchmark command is a template (placeholders: {', '.join(placeholders)})"
        )
    served = _option(args, "--model")
    if served and served.startswith(("/", "./", "~")):
        problems.append(f"benchmark command loads a local path as its model: {served}")
    elif served and task.model and served not in placeholders and served != task.model:
        problems.append(f"benchmark command serves {served} but the task's model is {task.model}")
    kind = command_kind(command)
    mode = task.benchmark.mode_as_given
    if kind is None:
        warnings.append(
            "benchmark command is not a serving, throughput or latency script; "
            "the load generator measures it as serving"
        )
    elif mode and _MODE_KINDS.get(mode) not in (None, kind):
        warnings.append(f"benchmark_mode '{mode}' but the command runs a {kind.value} benchmark")
    elif mode and mode not in _MODE_KINDS and kind is BenchmarkKind.SERVING:
        warnings.append(f"benchmark_mode '{mode}' but the command runs a serving benchmark")
    other = task.extra.get("openhands_mapping")
    if isinstance(other, dict) and other.get("model") and other["model"] != task.model:
        warnings.append(f"second source names model {other['model']}, this row {task.model}")
    return problems, warnings


def _aliases(row: dict[str, Any]) -> list[str]:
    given = _pick(row, "aliases")
    out = [str(a) for a in given] if isinstance(given, list) else []
    other = row.get("openhands_mapping")
    if isinstance(other, dict) and isinstance(other.get("patch_path"), str):
        match = _PATCH_ALIAS.search(other["patch_path"])
        if match:
            out.append(match.group(1))
    return sorted(set(out))


def task_from_row(row: dict[str, Any]) -> Task:
    """Build a task from one source row (raises pydantic's ValidationError on bad fields)."""
    human = _pick(row, "human_commit")
    command = _pick(row, "command")
    args = _command_args(command) if isinstance(command, str) else []
    gpus = _pick(row, "gpus")
    if gpus is None:
        gpus = _tensor_parallel(args) or row.get("tensor_parallel_in_command") or 1
    known = {key for keys in _ALIASES.values() for key in keys}
    fields: dict[str, Any] = {
        "task_id": _pick(row, "task_id") or (human[:8] if isinstance(human, str) else None),
        "human_commit": human,
        "parent_commit": _pick(row, "parent_commit"),
        "model": _pick(row, "model"),
        "benchmark": BenchmarkSpec(
            kind=command_kind(command) if isinstance(command, str) else None,
            command=command,
            mode_as_given=_pick(row, "mode"),
        ),
        "gpus": gpus,
        "notes": _pick(row, "notes") or "",
        "aliases": _aliases(row),
        "extra": {k: v for k, v in row.items() if k not in known},
    }
    if _pick(row, "repo_url"):
        fields["repo_url"] = _pick(row, "repo_url")
    # Leave absent required values out, so the error says "Field required".
    task = Task(**{k: v for k, v in fields.items() if v is not None})
    problems, warnings = assess(task)
    return task.model_copy(update={"problems": problems, "warnings": warnings})


def load_task_file(path: Path) -> list[Task]:
    """All tasks of a file, or an InputError listing every bad row."""
    name = str(path)
    tasks: list[Task] = []
    rows, errors = read_rows(path)
    seen_ids: dict[str, int] = {}
    seen_commits: dict[str, int] = {}
    for rowno, row in rows:
        try:
            task = task_from_row(row)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or None
                errors.append(RowError(name, rowno, field, err["msg"]))
            continue
        except (TypeError, ValueError) as exc:
            errors.append(RowError(name, rowno, None, str(exc)))
            continue
        for seen, key, label in (
            (seen_ids, task.task_id, "task_id"),
            (seen_commits, task.human_commit, "human_commit"),
        ):
            if key in seen:
                errors.append(RowError(name, rowno, label, f"duplicate of row {seen[key]} ({key})"))
            seen[key] = rowno
        tasks.append(task)
    if errors:
        raise InputError(sorted(errors, key=lambda e: e.row or 0))
    if not tasks:
        raise InputError([RowError(name, None, None, "no tasks in file")])
    return tasks
