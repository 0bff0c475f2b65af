"""Write results back in the source benchmark's schema, with every latency figure isobench
knows added to ``metrics`` and isobench's outcome fields alongside."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from isobench.intake.legacy import LOG_STREAM, legacy_timestamp, to_legacy_key
from isobench.models.metrics import Metrics
from isobench.models.outcomes import Outcome
from isobench.models.tables import RunRow

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def legacy_status(outcome: Outcome) -> str:
    if outcome is Outcome.SUCCESS:
        return "success"
    return "timeout" if outcome.is_timeout else "error"


def run_to_legacy(run: RunRow) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    if run.metrics is not None:
        values = {name: getattr(run.metrics, name) for name in Metrics.typed_fields()}
        flat = Metrics.from_flat({**values, **run.metrics.extras}).flat()
        metrics = {to_legacy_key(k): v for k, v in sorted(flat.items())}
    outcome = Outcome(run.outcome)
    raw = next((log.text for log in run.logs if log.stream == LOG_STREAM), None)
    if raw is None:
        raw = "\n".join(f"--- {log.stream} ---\n{log.text}" for log in run.logs)
    return {
        "human_commit": run.task.human_commit[:8],
        "human_commit_full": run.task.human_commit,
        "parent_commit": run.task.parent_commit,
        "model": run.model or run.task.model,
        "status": legacy_status(outcome),
        "error": None if outcome is Outcome.SUCCESS else (run.reason or outcome.value),
        "duration_s": run.duration_s,
        "metrics": metrics,
        "raw_output": raw,
        "timestamp": legacy_timestamp(run.started_at),
        "perf_command": run.config.get("perf_command"),
        "outcome": outcome.value,
        "cause": run.cause,
        "flags": run.flags,
        "image_digest": run.image_digest,
        "config_hash": run.config_hash,
    }


def agent_dirname(agent: str | None) -> str:
    return _UNSAFE.sub("__", agent) if agent else "reference"


def export_runs(runs: list[RunRow], out: Path, *, flat: bool) -> list[Path]:
    """One file per run; in a folder per agent unless ``flat`` (a single agent's export)."""
    written: list[Path] = []
    for run in runs:
        folder = out if flat else out / agent_dirname(run.agent.name if run.agent else None)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run.task.human_commit[:8]}_{run.arm}_result.json"
        if path in written:
            # Two configs of one task and arm: keep both, named by config.
            path = folder / f"{run.config_hash}__{run.task.human_commit[:8]}_{run.arm}_result.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(run_to_legacy(run), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # no half-written file if interrupted
        written.append(path)
    return written
