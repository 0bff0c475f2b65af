"""What a load-generator run measured, computed with vLLM's definitions, and how it is shown.

TTFT = first content chunk - send; ITL = gaps between content chunks (per chunk, pooled over
requests); TPOT per request = (latency - TTFT) / (output tokens - 1), for outputs of more
than one token; E2EL = latency (send to last content chunk); throughputs over the run's
duration. Failed requests are left out of every statistic and counted apart. Percentiles
interpolate linearly and std is the population std, as numpy's defaults that vLLM uses.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from isobench.models.metrics import (
    LATENCY_METRICS,
    Metrics,
    latency_key,
    percentile_key,
    percentile_word,
)

BLOCK_WIDTH = 50
_SECTION_TITLES = {
    "ttft": ("Time to First Token", "TTFT"),
    "tpot": ("Time per Output Token (excl. 1st token)", "TPOT"),
    "itl": ("Inter-token Latency", "ITL"),
    "e2el": ("End-to-end Latency", "E2EL"),
}


@dataclass
class RequestOutput:
    """One request as the client saw it. Times are seconds."""

    prompt_len: int
    success: bool = False
    output_tokens: int = 0
    ttft: float = 0.0
    latency: float = 0.0
    itl: list[float] = field(default_factory=list)
    error: str = ""
    scheduled: float = 0.0  # when the arrival process meant to send it (since start)
    sent: float = 0.0  # when it was sent (since start)


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        return 0.0
    data = sorted(values)
    rank = (len(data) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def _stats(metric: str, values_s: list[float], percentiles: tuple[float, ...]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    out = {
        latency_key("mean", metric): statistics.fmean(ms) if ms else 0.0,
        latency_key("median", metric): statistics.median(ms) if ms else 0.0,
        latency_key("std", metric): statistics.pstdev(ms) if ms else 0.0,
    }
    for p in sorted({*percentiles, 90.0, 99.0}):
        out[percentile_key(p, metric)] = percentile(ms, p)
    return out


def compute_metrics(
    outputs: list[RequestOutput], duration: float, percentiles: tuple[float, ...]
) -> Metrics:
    done = [o for o in outputs if o.success]
    input_tokens = sum(o.prompt_len for o in done)
    output_tokens = sum(o.output_tokens for o in done)
    tpots = [(o.latency - o.ttft) / (o.output_tokens - 1) for o in done if o.output_tokens > 1]
    series = {
        "ttft": [o.ttft for o in done],
        "tpot": tpots,
        "itl": [gap for o in done for gap in o.itl],
        "e2el": [o.latency for o in done],
    }
    values: dict[str, float] = {
        "completed": len(done),
        "failed": len(outputs) - len(done),
        "duration": duration,
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": len(done) / duration if duration else 0.0,
        "output_throughput": output_tokens / duration if duration else 0.0,
        "total_token_throughput": (input_tokens + output_tokens) / duration if duration else 0.0,
    }
    for metric in LATENCY_METRICS:
        values.update(_stats(metric, series[metric], percentiles))
    return Metrics.from_flat(values)


def _line(label: str, value: float | int) -> str:
    if isinstance(value, int):
        return f"{label:<40} {value:<10}"
    return f"{label:<40} {value:<10.2f}"


def format_block(metrics: Metrics, percentiles: tuple[float, ...]) -> str:
    """vLLM's "Serving Benchmark Result" block, so either tool's output reads the same way."""
    flat = metrics.flat()
    lines = ["{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=BLOCK_WIDTH, c="=")]
    rows = [
        ("Successful requests:", "completed"),
        ("Failed requests:", "failed"),
        ("Benchmark duration (s):", "duration"),
        ("Total input tokens:", "total_input_tokens"),
        ("Total generated tokens:", "total_output_tokens"),
        ("Request throughput (req/s):", "request_throughput"),
        ("Output token throughput (tok/s):", "output_throughput"),
        ("Total token throughput (tok/s):", "total_token_throughput"),
    ]
    lines += [_line(label, flat[key]) for label, key in rows if key in flat]
    for metric in LATENCY_METRICS:
        title, name = _SECTION_TITLES[metric]
        lines.append("{s:{c}^{n}}".format(s=title, n=BLOCK_WIDTH, c="-"))
        lines.append(_line(f"Mean {name} (ms):", flat.get(latency_key("mean", metric), 0.0)))
        lines.append(_line(f"Median {name} (ms):", flat.get(latency_key("median", metric), 0.0)))
        for p in sorted({*percentiles, 90.0, 99.0}):
            label = f"P{percentile_word(p)} {name} (ms):"
            lines.append(_line(label, flat.get(percentile_key(p, metric), 0.0)))
    lines.append("=" * BLOCK_WIDTH)
    return "\n".join(lines)


def save_result(
    metrics: Metrics, context: dict[str, Any], errors: list[str], health: dict[str, Any]
) -> dict[str, Any]:
    """The JSON of a run, with the keys of ``vllm bench serve --save-result``."""
    return {**context, **metrics.flat(), "errors": errors, "client_health": health}
