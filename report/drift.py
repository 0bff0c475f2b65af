"""Host drift: a baseline or human arm measured again against the last measurement of the same
image and config. The code did not change, so a change beyond the threshold and beyond the
noise of the repeats is the host's (driver, clocks, thermal, a neighbour on the GPU)."""

from __future__ import annotations

from dataclasses import dataclass

from isobench.models.tables import RunRow

# The figures watched, and whether a higher value is better.
DRIFT_FIGURES = {"output_throughput": True, "median_ttft_ms": False, "median_itl_ms": False}
# A change within this many coefficients of variation of the repeats is noise.
NOISE_CVS = 2.0


@dataclass(frozen=True)
class DriftLine:
    task: str
    arm: str
    figure: str
    before: float
    now: float
    change: float  # now / before - 1
    noise: float | None  # the larger coefficient of variation of the two runs' repeats
    drifted: bool
    worse: bool
    before_run: int
    now_run: int

    def describe(self) -> str:
        way = "worse" if self.worse else "better"
        return (
            f"{self.task} {self.arm} {self.figure}: {self.before:.4g} -> {self.now:.4g} "
            f"({self.change:+.1%}, {way}; runs {self.before_run} -> {self.now_run})"
        )


def _figure(run: RunRow, name: str) -> float | None:
    if run.metrics is None:
        return None
    value = getattr(run.metrics, name, None)
    return float(value) if value else None


def _cv(run: RunRow, name: str) -> float | None:
    extras = run.metrics.extras if run.metrics is not None else {}
    value = extras.get(f"{name}_cv")
    return float(value) if value is not None else None


def drift(before: RunRow, now: RunRow, threshold: float) -> list[DriftLine]:
    """One line per watched figure both runs have."""
    lines = []
    for name, higher_is_better in DRIFT_FIGURES.items():
        old, new = _figure(before, name), _figure(now, name)
        if old is None or new is None:
            continue
        change = new / old - 1
        spreads = [c for c in (_cv(before, name), _cv(now, name)) if c is not None]
        noise = max(spreads) if spreads else None
        limit = max(threshold, NOISE_CVS * noise) if noise is not None else threshold
        lines.append(
            DriftLine(
                task=now.task_id,
                arm=now.arm,
                figure=name,
                before=old,
                now=new,
                change=change,
                noise=noise,
                drifted=abs(change) > limit,
                worse=(change < 0) == higher_is_better,
                before_run=before.id,
                now_run=now.id,
            )
        )
    return lines
