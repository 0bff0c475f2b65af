"""Import result files of the source benchmark (``<commit>_<arm>_result.json``).

Each record is classified by what its ``raw_output`` shows (see ``tasks.classify``), not by
its own ``status`` and ``error`` fields; where the two disagree the run is flagged. Imports
are idempotent: a record's identity is its agent, arm and content hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from isobench.intake.rows import InputError, RowError
from isobench.models.domain import Arm, FullSha, RunRecord, RunSource, Task
from isobench.models.flags import Flag
from isobench.models.metrics import LATENCY_METRICS, Metrics
from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.tasks.classify import classify_log

RESULT_NAME = re.compile(
    r"^(?:.*__)?(?P<commit>[0-9a-f]{7,40})_(?P<arm>baseline|human|agent)_result\.json$"
)
LEGACY_TIMESTAMP = "%Y-%m-%d %H:%M:%S"
# What the old harness's docker pulls printed: the image it ran and the digest it got.
_IMAGE_REF = re.compile(
    r"(?:Unable to find image '([^']+)' locally|Downloaded newer image for (\S+)"
    r"|Image is up to date for (\S+))"
)
_IMAGE_DIGEST = re.compile(r"^Digest: (sha256:[0-9a-f]{64})\s*$", re.MULTILINE)
LOG_STREAM = "runner"

# The source schema's metric names for the figures isobench keeps under vLLM's names.
_LEGACY_THROUGHPUT_KEYS = {
    "request_throughput_req_s": "request_throughput",
    "output_token_throughput_tok_s": "output_throughput",
    "total_token_throughput_tok_s": "total_token_throughput",
}
_LEGACY_LATENCY = re.compile(r"^(ttft|tpot|itl|e2el)_(mean|median|std|p\d+(?:\.\d+)?)_ms$")
_MODERN_LATENCY = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")


def from_legacy_key(key: str) -> str:
    """``ttft_mean_ms -> mean_ttft_ms``, ``request_throughput_req_s -> request_throughput``."""
    if key in _LEGACY_THROUGHPUT_KEYS:
        return _LEGACY_THROUGHPUT_KEYS[key]
    if m := _LEGACY_LATENCY.match(key):
        return f"{m.group(2)}_{m.group(1)}_ms"
    return key


def to_legacy_key(key: str) -> str:
    """The inverse of :func:`from_legacy_key`."""
    for legacy, modern in _LEGACY_THROUGHPUT_KEYS.items():
        if key == modern:
            return legacy
    if (m := _MODERN_LATENCY.match(key)) and m.group(2) in LATENCY_METRICS:
        return f"{m.group(2)}_{m.group(1)}_ms"
    return key


class LegacyResult(BaseModel):
    """One record in the source schema. Unknown extra fields are kept, not rejected."""

    model_config = ConfigDict(extra="allow")

    human_commit: str = Field(min_length=7)
    human_commit_full: FullSha | None = None
    parent_commit: str | None = None
    model: str | None = None
    status: str
    error: str | None = None
    duration_s: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    raw_output: str
    timestamp: datetime
    perf_command: str | None = None


@dataclass(frozen=True)
class ParsedFile:
    path: Path
    arm: Arm
    record: LegacyResult
    content_sha256: str


def find_result_files(root: Path) -> tuple[list[tuple[Path, Arm]], list[Path]]:
    """Result files under ``root`` (with their arm) and JSON files that are not results."""
    found: list[tuple[Path, Arm]] = []
    other: list[Path] = []
    for path in sorted(root.rglob("*.json")):
        match = RESULT_NAME.match(path.name)
        if match:
            found.append((path, Arm(match.group("arm"))))
        else:
            other.append(path)
    return found, other


def parse_file(path: Path, arm: Arm) -> ParsedFile:
    name = str(path)
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except OSError as exc:
        raise InputError([RowError(name, None, None, f"cannot read: {exc}")]) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError([RowError(name, None, None, f"malformed JSON: {exc}")]) from exc
    if not isinstance(data, dict):
        raise InputError([RowError(name, None, None, "expected a JSON object")])
    try:
        record = LegacyResult.model_validate(data)
    except ValidationError as exc:
        raise InputError(
            [
                RowError(name, None, ".".join(str(p) for p in e["loc"]) or None, e["msg"])
                for e in exc.errors()
            ]
        ) from exc
    expected = RESULT_NAME.match(path.name)
    if expected and not (record.human_commit_full or record.human_commit).startswith(
        expected.group("commit")
    ):
        raise InputError(
            [
                RowError(
                    name,
                    None,
                    "human_commit",
                    f"file is named for {expected.group('commit')} but holds {record.human_commit}",
                )
            ]
        )
    return ParsedFile(path, arm, record, hashlib.sha256(raw).hexdigest())


def task_for_record(record: LegacyResult, known: dict[str, Task]) -> Task | None:
    """The loaded task a record belongs to, else a new task built from the record itself."""
    full = record.human_commit_full
    for task in known.values():
        if full and task.human_commit == full:
            return task
        if not full and task.human_commit.startswith(record.human_commit):
            return task
    if full is None:
        return None
    parent = (
        record.parent_commit if record.parent_commit and len(record.parent_commit) == 40 else None
    )
    return Task(
        task_id=full[:8],
        human_commit=full,
        parent_commit=parent,
        model=record.model,
        notes="created from an imported result file",
    )


def _record_metrics(record: LegacyResult) -> Metrics:
    return Metrics.from_flat({from_legacy_key(k): v for k, v in record.metrics.items()})


def _disagrees(a: Metrics, b: Metrics) -> bool:
    ours, theirs = a.flat(), b.flat()
    return any(
        abs(ours[k] - theirs[k]) > 0.005 * max(abs(ours[k]), abs(theirs[k]), 1e-9)
        for k in ours.keys() & theirs.keys()
    )


def _status_disagrees(record: LegacyResult, outcome: Outcome) -> bool:
    said = record.status.strip().lower()
    if said == "success":
        return outcome is not Outcome.SUCCESS
    if "timeout" in said or "timed out" in (record.error or "").lower():
        return not outcome.is_timeout
    if (
        "no metrics" in (record.error or "").lower()
        or "no throughput" in (record.error or "").lower()
    ):
        return outcome is not Outcome.NO_METRICS
    return outcome is Outcome.SUCCESS


def image_from_log(text: str) -> tuple[str | None, str | None]:
    """The image reference and digest a log shows the harness used, where it shows them."""
    refs = [next(g for g in m.groups() if g) for m in _IMAGE_REF.finditer(text)]
    digests = _IMAGE_DIGEST.findall(text)
    return (refs[-1] if refs else None), (digests[-1] if digests else None)


def to_run(parsed: ParsedFile, *, task: Task, agent: str) -> RunRecord:
    """The run record for one result file."""
    record = parsed.record
    found = classify_log(record.raw_output)
    outcome = found.outcome
    given = _record_metrics(record)
    flags = list(found.flags)
    metrics = found.metrics
    if (
        outcome.outcome is Outcome.NO_METRICS
        and record.status == "success"
        and not given.is_empty()
    ):
        # The stored log is a tail that lost the result block; the record kept the figures.
        outcome = OutcomeRecord(
            outcome=Outcome.SUCCESS,
            reason="figures from the record's metrics; its log tail holds no result block",
        )
    if metrics is not None and not given.is_empty() and _disagrees(metrics, given):
        flags.append(Flag.METRICS_DISAGREE)
    metrics = given if metrics is None else metrics.merged(given)
    if _status_disagrees(record, outcome.outcome):
        flags.append(Flag.STATUS_DISAGREES)
    if task.model and record.model and record.model != task.model:
        flags.append(Flag.MODEL_MISMATCH)
    command = record.perf_command or task.benchmark.command or ""
    started = record.timestamp if record.timestamp.tzinfo else record.timestamp.replace(tzinfo=UTC)
    duration = record.duration_s
    image_ref, image_digest = image_from_log(record.raw_output)
    return RunRecord(
        task_id=task.task_id,
        arm=parsed.arm,
        agent=agent if parsed.arm is Arm.AGENT else None,
        config_hash="legacy-" + hashlib.sha256(command.encode()).hexdigest()[:12],
        config={"legacy": True, "perf_command": command or None},
        dedup_key=f"import:{agent}:{parsed.arm.value}:{parsed.content_sha256}",
        source=RunSource.IMPORT,
        outcome=outcome,
        metrics=None if metrics.is_empty() else metrics,
        started_at=started,
        finished_at=started + timedelta(seconds=duration) if duration else None,
        duration_s=duration,
        image_ref=image_ref,
        image_digest=image_digest,
        model=record.model,
        client=command.split(" --", 1)[0] or None,
        flags=sorted(set(flags)),
        logs={LOG_STREAM: record.raw_output},
    )


def legacy_timestamp(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime(LEGACY_TIMESTAMP) if value else None
