"""Rows of input files and the errors that name them (file, row, field)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RowError:
    path: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.row is not None:
            where += f", row {self.row}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class InputError(Exception):
    """One or more rows of an input file are invalid; nothing was written."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([RowError(str(path), None, None, f"cannot read: {exc}")]) from exc


def jsonl_objects(name: str, text: str) -> tuple[list[tuple[int, dict[str, Any]]], list[RowError]]:
    """The JSON objects of a JSON Lines text with their line numbers, and the bad lines."""
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RowError(name, lineno, None, f"malformed JSON: {exc.msg}"))
            continue
        if not isinstance(value, dict):
            errors.append(RowError(name, lineno, None, "expected a JSON object"))
            continue
        rows.append((lineno, value))
    return rows, errors
