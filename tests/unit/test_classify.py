"""The log classifier against real records of the source benchmark and the bundled example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isobench.models.flags import Flag
from isobench.models.outcomes import CrashCause, Outcome
from isobench.tasks.classify import EVIDENCE_MAX_CHARS, classify_log
from tests.conftest import EXAMPLES, FIXTURES

ISO_LOGS = FIXTURES / "iso-logs"
CASES = json.loads((ISO_LOGS / "index.json").read_text())["cases"]


def _log_text(path: Path) -> str:
    if path.suffix == ".json":
        return json.loads(path.read_text())["raw_output"]
    return path.read_text()


@pytest.mark.parametrize("case", CASES, ids=[c["file"][:40] for c in CASES])
def test_agrees_with_careful_reader_on_real_records(case: dict) -> None:
    found = classify_log(_log_text(ISO_LOGS / case["file"]))
    assert found.outcome.outcome.value == case["failure_class"], case["reason"]
    assert (found.outcome.cause.value if found.outcome.cause else None) == case["cause"]
    if found.outcome.outcome is not Outcome.SUCCESS:
        assert found.outcome.reason
        assert found.outcome.evidence


def test_real_records_raise_the_flags_the_reader_noted() -> None:
    by_task = {c["task_id"]: _log_text(ISO_LOGS / c["file"]) for c in CASES}
    forced = classify_log(by_task["89a84b0b"])
    assert {Flag.PARTIAL_APPLY, Flag.HARNESS_FILE} <= set(forced.flags)
    overlay = classify_log(by_task["2deb029d"])
    assert {Flag.PARTIAL_APPLY, Flag.MODEL_OVERRIDE} <= set(overlay.flags)
    assert overlay.metrics is not None
    assert overlay.metrics.extras["prefix_cache_cost_time_s"] == pytest.approx(3.4825170040130615)
    served = classify_log(by_task["30172b49"])
    assert served.metrics is not None
    assert served.metrics.mean_ttft_ms == 585.72 and served.metrics.p99_itl_ms == 261.70
    assert Flag.MULTIPLE_RESULTS not in served.flags  # the block printed twice is one result


def test_evidence_shows_the_proving_line() -> None:
    crash = classify_log(_log_text(ISO_LOGS / "codex_gpt5__89a84b0b_agent_result.json"))
    assert "ModuleNotFoundError: No module named 'transformers.utils'" in crash.outcome.evidence
    infra = classify_log(_log_text(ISO_LOGS / "codex_gpt5__0d243f2a_agent_result.json"))
    assert "manifest unknown" in infra.outcome.evidence
    assert len(crash.outcome.evidence) <= EVIDENCE_MAX_CHARS


EXAMPLE_OUTCOMES = {
    "015069b0_agent": (Outcome.SUCCESS, None),
    "015069b0_baseline": (Outcome.SUCCESS, None),
    "015069b0_human": (Outcome.SUCCESS, None),
    "0ec82edd_agent": (Outcome.BUILD_FAILED, None),
    "0ec82edd_baseline": (Outcome.BENCHMARK_TIMEOUT, None),
    "0ec82edd_human": (Outcome.SUCCESS, None),
    "22d33bac_agent": (Outcome.PATCH_FAILED, None),
    "22d33bac_baseline": (Outcome.SERVER_TIMEOUT, None),
    "22d33bac_human": (Outcome.INFRA_ERROR, None),
    "299ebb62_agent": (Outcome.SERVER_CRASHED, CrashCause.SYNTAX_ERROR),
    "299ebb62_baseline": (Outcome.SUCCESS, None),
    "299ebb62_human": (Outcome.BENCHMARK_FAILED, None),
    "30172b49_agent": (Outcome.SERVER_CRASHED, CrashCause.CUDA_OOM),
    "30172b49_human": (Outcome.SERVER_CRASHED, CrashCause.IMPORT_ERROR),
    "3b61cb45_agent": (Outcome.SUCCESS, None),
    "3b61cb45_baseline": (Outcome.NO_METRICS, None),
}


@pytest.mark.parametrize(("name", "expected"), sorted(EXAMPLE_OUTCOMES.items()))
def test_bundled_example_outcomes(name: str, expected: tuple[Outcome, CrashCause | None]) -> None:
    found = classify_log(_log_text(EXAMPLES / "results" / f"{name}_result.json"))
    assert (found.outcome.outcome, found.outcome.cause) == expected


def test_example_covers_every_outcome_but_skipped() -> None:
    assert {o for o, _ in EXAMPLE_OUTCOMES.values()} == set(Outcome) - {Outcome.SKIPPED}


@pytest.mark.parametrize(
    "text", ["", "\n\n", "\x00\x01garbage\xff", "Serving Benchmark Result\n", "=" * 50]
)
def test_text_without_a_result_is_no_metrics_with_a_reason(text: str) -> None:
    found = classify_log(text)
    assert found.outcome.outcome is Outcome.NO_METRICS
    assert "no 'Serving Benchmark Result' block" in found.outcome.reason


def test_crash_after_ready_is_not_a_startup_crash() -> None:
    log = (
        "vLLM API server version 0.6.3\nINFO:     Application startup complete.\n"
        "Traceback (most recent call last):\n  File 'x'\nRuntimeError: engine died\n"
    )
    assert classify_log(log).outcome.outcome is Outcome.BENCHMARK_FAILED


def test_oom_anywhere_in_the_crash_is_the_cause() -> None:
    log = (
        "vLLM API server version 0.8.0\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "During handling of the above exception, another exception occurred:\n"
        "RuntimeError: worker died\n"
    )
    found = classify_log(log)
    assert (found.outcome.outcome, found.outcome.cause) == (
        Outcome.SERVER_CRASHED,
        CrashCause.CUDA_OOM,
    )
    assert "CUDA out of memory" in found.outcome.evidence


def test_port_in_use_is_infra_not_a_crash() -> None:
    log = "vLLM API server version 0.8.0\nOSError: [Errno 98] Address already in use\n"
    assert classify_log(log).outcome.outcome is Outcome.INFRA_ERROR


def test_build_failure_before_an_infra_error_is_the_build() -> None:
    disk_first = "No space left on device\nWheel build failed with return code 1\n"
    assert classify_log(disk_first).outcome.outcome is Outcome.INFRA_ERROR
    build_first = "Wheel build failed with return code 1\nFilesystemExecutionError: cancelled\n"
    assert classify_log(build_first).outcome.outcome is Outcome.BUILD_FAILED


def test_server_exit_causes() -> None:
    from isobench.tasks.classify import server_exit

    oom = server_exit("loading\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate\n")
    assert (oom.outcome, oom.cause) == (Outcome.SERVER_CRASHED, CrashCause.CUDA_OOM)
    syntax = server_exit('  File "x.py", line 3\n    if x\n       ^\nSyntaxError: invalid syntax\n')
    assert syntax.cause is CrashCause.SYNTAX_ERROR
    port = server_exit("OSError: [Errno 98] error while attempting to bind: address already in use")
    assert port.outcome is Outcome.INFRA_ERROR
    silent = server_exit("INFO starting\nKilled\n")
    assert (silent.cause, "Killed" in silent.evidence) == (CrashCause.OTHER, True)
