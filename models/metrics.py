"""Metric names, defined once: vLLM's ``--save-result`` keys for serving runs, and the figures
of its offline throughput and latency scripts.

The ``Metrics`` model is the source of truth: the database's typed metric columns, the parser,
the importer and the exporter all take their names from its fields.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el")
"""Per-request latencies of a serving run, in milliseconds."""

STANDARD_STATS = ("mean", "median", "std", "p90", "p99")
"""Statistics stored in typed columns; other percentiles go to ``extras``."""

_PERCENTILE_KEY = re.compile(r"^p(\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")


def latency_key(stat: str, metric: str) -> str:
    """The save-result key of a latency statistic, e.g. ``("p99", "itl") -> "p99_itl_ms"``."""
    if metric not in LATENCY_METRICS:
        raise ValueError(f"unknown latency metric {metric!r}; expected one of {LATENCY_METRICS}")
    return f"{stat}_{metric}_ms"


def percentile_word(percentile: float) -> str:
    """vLLM's spelling of a percentile: ``99``, ``99.9``, ``90``."""
    return str(int(percentile)) if float(percentile).is_integer() else str(percentile)


def percentile_key(percentile: float, metric: str) -> str:
    """vLLM's percentile key: ``p99_itl_ms``, ``p99.9_itl_ms``."""
    return latency_key(f"p{percentile_word(percentile)}", metric)


def is_percentile_key(key: str) -> bool:
    return _PERCENTILE_KEY.match(key) is not None


class Metrics(BaseModel):
    """What one measured attempt produced. Every field is optional: absence is not zero."""

    model_config = ConfigDict(extra="forbid")

    # Serving run: counts and totals.
    completed: int | None = Field(None, description="requests that finished")
    failed: int | None = Field(None, description="requests that errored")
    duration: float | None = Field(None, description="benchmark wall time, s")
    total_input_tokens: int | None = None
    total_output_tokens: int | None = None
    # Serving run: throughputs over the whole run.
    request_throughput: float | None = Field(None, description="req/s")
    request_goodput: float | None = Field(None, description="req/s meeting the goodput SLOs")
    output_throughput: float | None = Field(None, description="output tok/s")
    total_token_throughput: float | None = Field(None, description="input+output tok/s")
    # Serving run: latency statistics, ms.
    mean_ttft_ms: float | None = None
    median_ttft_ms: float | None = None
    std_ttft_ms: float | None = None
    p90_ttft_ms: float | None = None
    p99_ttft_ms: float | None = None
    mean_tpot_ms: float | None = None
    median_tpot_ms: float | None = None
    std_tpot_ms: float | None = None
    p90_tpot_ms: float | None = None
    p99_tpot_ms: float | None = None
    mean_itl_ms: float | None = None
    median_itl_ms: float | None = None
    std_itl_ms: float | None = None
    p90_itl_ms: float | None = None
    p99_itl_ms: float | None = None
    mean_e2el_ms: float | None = None
    median_e2el_ms: float | None = None
    std_e2el_ms: float | None = None
    p90_e2el_ms: float | None = None
    p99_e2el_ms: float | None = None
    # Offline throughput script.
    requests_per_second: float | None = None
    tokens_per_second: float | None = Field(None, description="total tok/s as the script reports")
    output_tokens_per_second: float | None = None
    # Offline latency script, seconds per batch.
    avg_latency: float | None = None
    p50_latency: float | None = None
    p90_latency: float | None = None
    p99_latency: float | None = None
    extras: dict[str, float] = Field(
        default_factory=dict,
        description="Figures without a typed column: other percentiles (p95_ttft_ms), "
        "legacy input_throughput, prefix-caching time, ...",
    )

    @field_validator("extras")
    @classmethod
    def _finite_extras(cls, value: dict[str, float]) -> dict[str, float]:
        return {k: float(v) for k, v in value.items() if v is not None and math.isfinite(v)}

    @classmethod
    def typed_fields(cls) -> dict[str, type]:
        """Name -> python type (int or float) of every typed metric field."""
        out: dict[str, type] = {}
        for name, info in cls.model_fields.items():
            if name == "extras":
                continue
            out[name] = int if info.annotation == (int | None) else float
        return out

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> Metrics:
        """Build from a flat mapping: typed names go to fields, numeric others to extras."""
        typed = cls.typed_fields()
        fields: dict[str, Any] = {}
        extras: dict[str, float] = {}
        for key, value in values.items():
            if value is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if key in typed:
                fields[key] = typed[key](value)
            else:
                extras[key] = float(value)
        return cls(**fields, extras=extras)

    def flat(self) -> dict[str, float | int]:
        """Every known figure as one flat mapping (typed fields and extras)."""
        out: dict[str, float | int] = {
            k: v for k, v in self.model_dump(exclude={"extras"}).items() if v is not None
        }
        out.update(self.extras)
        return out

    def is_empty(self) -> bool:
        return not self.flat()

    def merged(self, other: Metrics) -> Metrics:
        """This set, with figures from ``other`` filling what this one lacks."""
        return Metrics.from_flat({**other.flat(), **self.flat()})
