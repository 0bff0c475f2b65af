"""The per-task comparison: every arm's outcome and figures beside its task's baseline and
human arms, so an agent's gain reads as a ratio against both."""

from __future__ import annotations

from dataclasses import dataclass

from isobench.models.domain import Arm
from isobench.models.tables import RunRow


@dataclass(frozen=True)
class ArmLine:
    task: str
    arm: str
    agent: str | None
    outcome: str
    cause: str | None
    output_throughput: float | None
    median_ttft_ms: float | None
    median_itl_ms: float | None
    vs_baseline: float | None
    vs_human: float | None


def _figure(run: RunRow, name: str) -> float | None:
    if run.metrics is None or run.outcome != "success":
        return None
    value = getattr(run.metrics, name, None)
    return float(value) if value is not None else None


def compare(runs: list[RunRow]) -> list[ArmLine]:
    """``runs``: the latest attempt per task, arm, agent and config (one config)."""
    by_task: dict[str, list[RunRow]] = {}
    for run in runs:
        by_task.setdefault(run.task_id, []).append(run)
    order = {Arm.BASELINE.value: 0, Arm.HUMAN.value: 1, Arm.AGENT.value: 2}
    lines: list[ArmLine] = []
    for task, task_runs in sorted(by_task.items()):
        reference = {
            r.arm: _figure(r, "output_throughput") for r in task_runs if r.arm != Arm.AGENT.value
        }
        base, human = reference.get(Arm.BASELINE.value), reference.get(Arm.HUMAN.value)
        ranked = sorted(task_runs, key=lambda r: (order[r.arm], r.agent.name if r.agent else ""))
        for run in ranked:
            tput = _figure(run, "output_throughput")
            lines.append(
                ArmLine(
                    task=task,
                    arm=run.arm,
                    agent=run.agent.name if run.agent else None,
                    outcome=run.outcome,
                    cause=run.cause,
                    output_throughput=tput,
                    median_ttft_ms=_figure(run, "median_ttft_ms"),
                    median_itl_ms=_figure(run, "median_itl_ms"),
                    vs_baseline=tput / base if tput and base else None,
                    vs_human=tput / human if tput and human else None,
                )
            )
    return lines


HEADERS = [
    "task",
    "arm",
    "agent",
    "outcome",
    "output tok/s",
    "vs baseline",
    "vs human",
    "median TTFT ms",
    "median ITL ms",
]


def rows(lines: list[ArmLine]) -> list[list[str]]:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    return [
        [
            line.task,
            line.arm,
            line.agent or "-",
            line.outcome + (f" ({line.cause})" if line.cause else ""),
            num(line.output_throughput, ",.1f"),
            num(line.vs_baseline, ".2f"),
            num(line.vs_human, ".2f"),
            num(line.median_ttft_ms, ".1f"),
            num(line.median_itl_ms, ".2f"),
        ]
        for line in lines
    ]
