"""Domain models (pydantic), the outcome taxonomy, metric names, settings and the tables."""

from isobench.models.domain import (
    AgentPatch,
    Arm,
    BenchmarkConfig,
    BenchmarkKind,
    BenchmarkSpec,
    PatchStatus,
    RunRecord,
    RunSource,
    Task,
)
from isobench.models.metrics import Metrics
from isobench.models.outcomes import CrashCause, Outcome, OutcomeRecord
from isobench.models.settings import Settings

__all__ = [
    "AgentPatch",
    "Arm",
    "BenchmarkConfig",
    "BenchmarkKind",
    "BenchmarkSpec",
    "CrashCause",
    "Metrics",
    "Outcome",
    "OutcomeRecord",
    "PatchStatus",
    "RunRecord",
    "RunSource",
    "Settings",
    "Task",
]
