"""Find which task a name in a path or a record refers to: task id, alias or commit prefix."""

from __future__ import annotations

import re

from isobench.models.domain import Task

_TOKEN = re.compile(r"vllm_core-\d+|[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")


class TaskIndex:
    def __init__(self, tasks: list[Task]) -> None:
        self.tasks = {t.task_id: t for t in tasks}
        self._names: dict[str, str] = {}
        for task in tasks:
            for name in (task.task_id, *task.aliases):
                self._names[name] = task.task_id

    def lookup(self, key: str) -> set[str]:
        """Task ids ``key`` can mean (empty when none, several when ambiguous)."""
        if key in self._names:
            return {self._names[key]}
        low = key.lower()
        if _HEX.match(low):
            return {t.task_id for t in self.tasks.values() if t.human_commit.startswith(low)}
        return set()

    def from_path(self, parts: list[str]) -> set[str]:
        """Task ids named anywhere in a path's components (file name without suffix too)."""
        found: set[str] = set()
        for part in parts:
            candidates = {part, part.split(".", 1)[0], *_TOKEN.findall(part)}
            candidates.update(p for c in list(candidates) for p in re.split(r"[_.]", c))
            for candidate in candidates:
                if candidate:
                    found |= self.lookup(candidate)
        return found
