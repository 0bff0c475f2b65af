"""Measure a ready server with the load generator, ``repeats`` times, under a hard timeout.

A run counts as measured only when every request completed: failed requests make it
``benchmark_failed`` with the first errors kept, never a success averaged over survivors. A
run in which the client could not keep up is ``infra_error`` (the machine, not the code
under test, shaped it; it is retried). The repeats are kept whole in the result JSON; the
stored figures are their medians, with the spread of the throughputs beside them.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import statistics

from isobench.models.domain import BenchmarkConfig, Task
from isobench.models.metrics import Metrics
from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.runtimes.base import ArmJob, Prepared, Runtime
from isobench.tasks.classify import classify_log, measured_outcome
from isobench.tasks.loadgen import LoadgenError, LoadgenResult, Target, run_load
from isobench.tasks.parse import parse_output, parse_results
from isobench.tasks.patch_apply import StepFailure

SPREAD_KEYS = ("request_throughput", "output_throughput", "median_ttft_ms", "median_itl_ms")


def _fail(outcome: Outcome, reason: str, evidence: str, results: list[dict]) -> StepFailure:
    failure = StepFailure.of(outcome, reason, evidence)
    failure.logs["client"] = json.dumps(results, indent=1)
    return failure


async def _measure(
    config: BenchmarkConfig, target: Target, timeout_s: float
) -> list[LoadgenResult]:
    async def repeats() -> list[LoadgenResult]:
        # Each repeat has its own seed: the same workload shape, other prompts and arrivals.
        return [
            await run_load(config.model_copy(update={"seed": config.seed + i}), target)
            for i in range(config.repeats)
        ]

    return await asyncio.wait_for(repeats(), timeout_s)


def aggregate(runs: list[Metrics]) -> Metrics:
    """Medians over repeats, with the coefficient of variation of the main figures."""
    flats = [m.flat() for m in runs]
    keys = set.intersection(*(set(f) for f in flats))
    values: dict[str, float] = {k: statistics.median(f[k] for f in flats) for k in keys}
    values["repeats"] = len(runs)
    for key in SPREAD_KEYS:
        series = [f[key] for f in flats if key in f]
        if len(series) > 1 and statistics.fmean(series):
            values[f"{key}_cv"] = statistics.pstdev(series) / statistics.fmean(series)
    return Metrics.from_flat(values)


def run_benchmark(url: str, model: str, config: BenchmarkConfig, timeout_s: float) -> str:
    """The result JSON (a list, one object per repeat), or StepFailure."""
    target = Target(url, model=model)
    try:
        results = asyncio.run(_measure(config, target, timeout_s))
    except TimeoutError as exc:
        raise _fail(
            Outcome.BENCHMARK_TIMEOUT,
            f"benchmark did not finish within {timeout_s:.0f} s",
            f"{config.repeats} repeat(s) of {config.num_prompts} requests",
            [],
        ) from exc
    except LoadgenError as exc:
        raise _fail(Outcome.BENCHMARK_FAILED, str(exc), str(exc), []) from exc
    saved = [r.save_result() for r in results]
    for result in results:
        if result.metrics.failed:
            errors = "\n".join(result.errors)
            raise _fail(
                Outcome.BENCHMARK_FAILED,
                f"{result.metrics.failed} of {config.num_prompts} requests failed",
                errors,
                saved,
            )
        if not result.health.ok:
            raise _fail(
                Outcome.INFRA_ERROR,
                "the load generator could not keep up: " + "; ".join(result.health.problems),
                json.dumps(result.health.model_dump()),
                saved,
            )
    return json.dumps(saved)


def parse_benchmark(result_json: str) -> Metrics:
    """The parse step: the repeats' figures read back with the same parser as any vLLM
    output, then aggregated."""
    found = [r.metrics for r in parse_results(result_json)]
    if not found:
        raise StepFailure(
            OutcomeRecord(
                outcome=Outcome.NO_METRICS,
                reason="the benchmark's output holds no result",
                evidence=result_json[-2000:],
            )
        )
    return aggregate(found)


def script_command(task: Task, port: int | None) -> list[str]:
    """The task's own benchmark command: its interpreter is the runtime's, and a serving
    script is pointed at the arm's server."""
    if not task.benchmark.command:
        raise StepFailure(
            OutcomeRecord(
                outcome=Outcome.BENCHMARK_FAILED,
                reason=f"task {task.task_id} has no benchmark command to run",
            )
        )
    args = shlex.split(task.benchmark.command)
    if args and args[0] in ("python", "python3"):
        args[0] = "{python}"
    if port is not None:
        args += ["--host", "127.0.0.1", "--port", str(port)]
    return args


def run_script(
    runtime: Runtime, job: ArmJob, prepared: Prepared, port: int | None, timeout_s: float
) -> str:
    """Run the task's benchmark script with the arm's code; its whole output, or StepFailure."""
    args = script_command(job.task, port)
    done = runtime.run_command(job, prepared, args, timeout_s)
    if done.exit_code is None:
        raise StepFailure(
            OutcomeRecord(
                outcome=Outcome.BENCHMARK_TIMEOUT,
                reason=f"benchmark script did not finish within {timeout_s:.0f} s",
                evidence=done.output[-2000:],
            ),
            {"client": done.output},
        )
    if done.exit_code != 0 and parse_output(done.output).metrics is None:
        found = classify_log(done.output).outcome
        reason = found.reason if found.outcome is Outcome.BENCHMARK_FAILED else "no result"
        raise StepFailure(
            OutcomeRecord(
                outcome=Outcome.BENCHMARK_FAILED,
                reason=f"benchmark script exited with {done.exit_code}: {reason}"[:500],
                evidence=found.evidence or done.output[-2000:],
            ),
            {"client": done.output},
        )
    return done.output


def parse_script(output: str) -> Metrics:
    """The parse step for a script's output: every request must have completed."""
    parsed = parse_output(output)
    outcome = measured_outcome(parsed) if parsed.metrics is not None else None
    if parsed.metrics is None or outcome is None:
        found = classify_log(output).outcome
        raise StepFailure(
            OutcomeRecord(
                outcome=Outcome.NO_METRICS,
                reason=parsed.reason or found.reason,
                evidence=found.evidence or output[-2000:],
            )
        )
    if outcome.outcome is not Outcome.SUCCESS:
        raise StepFailure(outcome)
    return parsed.metrics
