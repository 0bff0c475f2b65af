"""The per-agent table the source report starts with, built from the latest attempts.

Columns: total, successful, error, timeout, skipped, success rate, and one column per outcome.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from isobench.models.outcomes import Outcome
from isobench.models.tables import RunRow

NO_AGENT = "(reference arms)"


@dataclass
class AgentSummary:
    agent: str
    total: int = 0
    successful: int = 0
    error: int = 0
    timeout: int = 0
    skipped: int = 0
    breakdown: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})

    @property
    def success_rate(self) -> float:
        counted = self.total - self.skipped
        return self.successful / counted if counted else 0.0

    def add(self, outcome: Outcome) -> None:
        self.total += 1
        self.breakdown[outcome.value] += 1
        if outcome is Outcome.SUCCESS:
            self.successful += 1
        elif outcome is Outcome.SKIPPED:
            self.skipped += 1
        elif outcome.is_timeout:
            self.timeout += 1
        else:
            self.error += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "total": self.total,
            "successful": self.successful,
            "error": self.error,
            "timeout": self.timeout,
            "skipped": self.skipped,
            "success_rate": round(self.success_rate, 4),
            **self.breakdown,
        }


def summarize_runs(runs: Iterable[RunRow]) -> list[AgentSummary]:
    """The summary of stored attempts (usually the latest per task, arm, agent and config)."""
    return summarize((r.agent.name if r.agent else None, r.outcome) for r in runs)


def summarize(rows: Iterable[tuple[str | None, str]]) -> list[AgentSummary]:
    """``rows`` are (agent name or None, outcome value) of the attempts to count."""
    out: dict[str, AgentSummary] = {}
    for agent, outcome in rows:
        name = agent or NO_AGENT
        out.setdefault(name, AgentSummary(name)).add(Outcome(outcome))
    return [out[k] for k in sorted(out)]


HEADERS = ["agent", "total", "successful", "error", "timeout", "skipped", "success_rate"]


def _columns(summaries: list[AgentSummary]) -> list[str]:
    # Outcome columns that are zero for every agent add nothing to the table.
    used = [o.value for o in Outcome if any(s.breakdown[o.value] for s in summaries)]
    return HEADERS + used


def _cell(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, float) else str(value)


def to_markdown(summaries: list[AgentSummary]) -> str:
    cols = _columns(summaries)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in summaries:
        row = s.as_dict()
        lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def to_csv(summaries: list[AgentSummary]) -> str:
    buf = io.StringIO()
    cols = HEADERS + [o.value for o in Outcome]
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        writer.writerow(s.as_dict())
    return buf.getvalue()


def to_json(summaries: list[AgentSummary]) -> str:
    return json.dumps([s.as_dict() for s in summaries], indent=2) + "\n"


def table_rows(summaries: list[AgentSummary]) -> tuple[list[str], list[list[str]]]:
    cols = _columns(summaries)
    return cols, [[_cell(s.as_dict()[c]) for c in cols] for s in summaries]
