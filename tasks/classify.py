"""Decide how a run ended from what its log shows, not from what a harness said about it.

The source benchmark's own status fields often mislead (a missing image reported as "no
metrics", a crash reported as a timeout), so the outcome comes from the log: which step
failed, with the line that proves it. Pure functions over text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from isobench.models.flags import Flag
from isobench.models.metrics import Metrics
from isobench.models.outcomes import CrashCause, Outcome, OutcomeRecord
from isobench.tasks.parse import ParseResult, clean_log, parse_output

EVIDENCE_CONTEXT = 3
EVIDENCE_MAX_CHARS = 2000

_RANK_PREFIX = re.compile(r"^\[rank\d+\]:\s?")


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


PATCH_FATAL = _rx(
    r"can't find file to patch",
    r"No file to patch",
    r"error: corrupt patch",
    r"^error: .*: patch does not apply",
    r"patch: \*\*\*\* (?:malformed|Only garbage)",
    r"^PATCH_FAILED\b",
)
PARTIAL_APPLY = _rx(r"Hunk #\d+ FAILED", r"AGENT_PATCH_APPLIED_FALLBACK", r"patch result rc=[1-9]")
BUILD_FAILED = _rx(
    r"Wheel build failed",
    r"Failed building wheel for vllm",
    r"failed to solve:",
    r"returned a non-zero code: \d+",
    r"CMake Error",
    r"^BUILD_FAILED\b",
)
INFRA = _rx(
    r"Error response from daemon",
    r"manifest unknown",
    r"pull access denied",
    r"Cannot connect to the Docker daemon",
    r"[Nn]o space left on device",
    r"[Aa]ddress already in use",
    r"FilesystemExecutionError",
    r"^INFRA_ERROR\b",
)
BENCH_TIMEOUT = _rx(
    r"TimeoutExpired: Command .*(?:benchmark_\w+\.py|bench (?:serve|throughput|latency))",
    r"^BENCHMARK_TIMEOUT\b",
)
SERVER_TIMEOUT = _rx(
    r"^SERVER_TIMEOUT\b",
    r"[Ss]erver (?:did not become ready|failed to start) within",
    r"[Tt]imed out waiting for (?:the )?(?:vLLM )?server",
)
SERVER_START = _rx(
    r"Starting vLLM server", r"vLLM API server version", r"entrypoints\.openai\.api_server"
)
SERVER_READY = _rx(r"Application startup complete", r"Uvicorn running on")
SERVER_CRASHED = _rx(r"^SERVER_CRASHED\b")
EXCEPTION = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*([A-Z]\w*(?:Error|Exception|Exit|Interrupt|Expired|Failure))"
    r"(?::\s|\(|$)"
)
CUDA_OOM = _rx(r"CUDA out of memory", r"OutOfMemoryError", r"CUDA error: out of memory")
MODEL_OVERRIDE = _rx(r"model override: (\S+) -> (\S+)", r"Fixing model name: (\S+) -> (\S+)")
ENVIRONMENT_MODIFIED = _rx(
    r"^Successfully installed ",
    r"^\s*Patching: ",
    r"^Fixing \w[\w. ]* compatibility",
    r"Installing vllm==\S+ from PyPI",
)

_CAUSES = {
    "ModuleNotFoundError": CrashCause.IMPORT_ERROR,
    "ImportError": CrashCause.IMPORT_ERROR,
    "SyntaxError": CrashCause.SYNTAX_ERROR,
    "IndentationError": CrashCause.SYNTAX_ERROR,
    "TabError": CrashCause.SYNTAX_ERROR,
}


@dataclass(frozen=True)
class Classification:
    outcome: OutcomeRecord
    metrics: Metrics | None = None
    flags: list[Flag] = field(default_factory=list)
    parse: ParseResult | None = None


class _Log:
    """A cleaned log with positions, so findings can be compared by where they occur."""

    def __init__(self, text: str) -> None:
        self.lines = [_RANK_PREFIX.sub("", ln) for ln in clean_log(text)]

    def first(self, pattern: re.Pattern[str], start: int = 0) -> int | None:
        for i in range(start, len(self.lines)):
            if pattern.search(self.lines[i]):
                return i
        return None

    def exceptions(self, start: int = 0, end: int | None = None) -> list[tuple[int, str]]:
        stop = len(self.lines) if end is None else end
        return [
            (i, m.group(1)) for i in range(start, stop) if (m := EXCEPTION.match(self.lines[i]))
        ]

    def excerpt(self, index: int, before: int = EVIDENCE_CONTEXT) -> str:
        lo = max(0, index - before)
        hi = min(len(self.lines), index + EVIDENCE_CONTEXT + 1)
        text = "\n".join(ln.rstrip() for ln in self.lines[lo:hi] if ln.strip())
        return text[-EVIDENCE_MAX_CHARS:]


def _flags(log: _Log) -> list[Flag]:
    found = [
        flag
        for flag, pattern in (
            (Flag.PARTIAL_APPLY, PARTIAL_APPLY),
            (Flag.MODEL_OVERRIDE, MODEL_OVERRIDE),
            (Flag.ENVIRONMENT_MODIFIED, ENVIRONMENT_MODIFIED),
        )
        if log.first(pattern) is not None
    ]
    if log.first(re.compile(r"(?:checking|patching) file (?:\S*/)?model_patch\.diff")) is not None:
        found.append(Flag.HARNESS_FILE)
    return found


def measured_outcome(parsed: ParseResult) -> OutcomeRecord | None:
    metrics = parsed.metrics
    if metrics is None:
        return None
    if metrics.failed:
        return OutcomeRecord(
            outcome=Outcome.BENCHMARK_FAILED,
            reason=f"{metrics.failed} requests failed (completed {metrics.completed})",
        )
    if metrics.completed == 0:
        return OutcomeRecord(outcome=Outcome.BENCHMARK_FAILED, reason="no request completed")
    expected = parsed.expected_requests
    if metrics.completed is not None and expected is not None and metrics.completed < expected:
        # Versions before the 'Failed requests' line only show failures as a shortfall.
        return OutcomeRecord(
            outcome=Outcome.BENCHMARK_FAILED,
            reason=f"only {metrics.completed} of {expected} requests completed",
        )
    return OutcomeRecord(outcome=Outcome.SUCCESS, reason=f"{parsed.format} result parsed")


def _crash(log: _Log, start: int, crash_marker: int | None) -> OutcomeRecord | None:
    """A server that exited before it was ready, with the cause its last exception shows."""
    ready = log.first(SERVER_READY, start)
    end = crash_marker if crash_marker is not None else len(log.lines)
    errors = log.exceptions(start, end)
    if ready is not None and (not errors or errors[-1][0] > ready):
        return None  # it became ready: whatever failed later failed during the benchmark
    if not errors and crash_marker is None:
        return None
    where, name = errors[-1] if errors else (crash_marker or start, "")
    oom = log.first(CUDA_OOM, start)
    if oom is not None and oom < end:
        cause, where = CrashCause.CUDA_OOM, oom
    else:
        cause = _CAUSES.get(name, CrashCause.OTHER)
    return OutcomeRecord(
        outcome=Outcome.SERVER_CRASHED,
        cause=cause,
        reason=f"server exited before it was ready: {log.lines[where].strip()[:300]}",
        evidence=log.excerpt(where, before=6),
    )


def server_exit(text: str) -> OutcomeRecord:
    """The outcome of a server that exited before it was ready, from its own log: the cause
    its last exception (or an out-of-memory line) shows. Port trouble is infrastructure."""
    log = _Log(text)
    if (i := log.first(INFRA)) is not None:
        return OutcomeRecord(
            outcome=Outcome.INFRA_ERROR, reason=log.lines[i].strip(), evidence=log.excerpt(i)
        )
    crash = _crash(log, 0, None)
    if crash is not None:
        return crash
    last = max((i for i, ln in enumerate(log.lines) if ln.strip()), default=0)
    return OutcomeRecord(
        outcome=Outcome.SERVER_CRASHED,
        cause=CrashCause.OTHER,
        reason="server exited before it was ready, without an error in its log",
        evidence=log.excerpt(last, before=10),
    )


def classify_log(text: str) -> Classification:
    """The outcome a careful reader would give this log, with its evidence and flags."""
    log = _Log(text)
    flags = _flags(log)
    parsed = parse_output(text)
    if len(parsed.notes):
        flags.append(Flag.MULTIPLE_RESULTS)

    def done(record: OutcomeRecord, index: int | None = None) -> Classification:
        if index is not None and not record.evidence:
            record = record.model_copy(update={"evidence": log.excerpt(index)})
        return Classification(record, parsed.metrics, flags, parsed)

    if (i := log.first(PATCH_FATAL)) is not None:
        return done(
            OutcomeRecord(
                outcome=Outcome.PATCH_FAILED,
                reason=f"patch does not apply: {log.lines[i].strip()}",
            ),
            i,
        )
    measured = measured_outcome(parsed)
    if measured is not None:
        return done(measured, parsed.line if measured.outcome is not Outcome.SUCCESS else None)
    build, infra = log.first(BUILD_FAILED), log.first(INFRA)
    if build is not None and (infra is None or build <= infra):
        return done(
            OutcomeRecord(outcome=Outcome.BUILD_FAILED, reason=log.lines[build].strip()), build
        )
    if infra is not None:
        return done(
            OutcomeRecord(outcome=Outcome.INFRA_ERROR, reason=log.lines[infra].strip()), infra
        )
    if (i := log.first(BENCH_TIMEOUT)) is not None:
        return done(
            OutcomeRecord(outcome=Outcome.BENCHMARK_TIMEOUT, reason=log.lines[i].strip()[:300]),
            i,
        )
    start, crash_marker = log.first(SERVER_START), log.first(SERVER_CRASHED)
    if start is not None or crash_marker is not None:
        crash = _crash(log, start if start is not None else 0, crash_marker)
        if crash is not None:
            return done(crash)
    if (i := log.first(SERVER_TIMEOUT)) is not None:
        return done(OutcomeRecord(outcome=Outcome.SERVER_TIMEOUT, reason=log.lines[i].strip()), i)
    if errors := log.exceptions():
        i, _name = errors[-1]
        return done(
            OutcomeRecord(
                outcome=Outcome.BENCHMARK_FAILED,
                reason=f"benchmark raised {log.lines[i].strip()[:300]}",
            ),
            i,
        )
    return done(
        OutcomeRecord(outcome=Outcome.NO_METRICS, reason=parsed.reason),
        len(log.lines) - 1 if log.lines else None,
    )
