"""The outcome taxonomy: every attempt ends in exactly one outcome, with the evidence for it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Outcome(StrEnum):
    SUCCESS = "success"
    PATCH_FAILED = "patch_failed"
    BUILD_FAILED = "build_failed"
    SERVER_CRASHED = "server_crashed"
    SERVER_TIMEOUT = "server_timeout"
    BENCHMARK_FAILED = "benchmark_failed"
    NO_METRICS = "no_metrics"
    BENCHMARK_TIMEOUT = "benchmark_timeout"
    INFRA_ERROR = "infra_error"
    SKIPPED = "skipped"

    @property
    def is_timeout(self) -> bool:
        return self in (Outcome.SERVER_TIMEOUT, Outcome.BENCHMARK_TIMEOUT)

    @property
    def is_retryable(self) -> bool:
        """Only infrastructure trouble is retried automatically; every other outcome is final."""
        return self is Outcome.INFRA_ERROR


class CrashCause(StrEnum):
    """Why a server exited before it was ready (only for ``server_crashed``)."""

    IMPORT_ERROR = "import_error"
    SYNTAX_ERROR = "syntax_error"
    CUDA_OOM = "cuda_oom"
    OTHER = "other"


class OutcomeRecord(BaseModel):
    """An outcome with what caused it and the log lines that show it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome
    cause: CrashCause | None = None
    reason: str = Field(default="", description="One line a user can read: what failed.")
    evidence: str = Field(default="", description="The log lines that prove it (bounded excerpt).")

    def model_post_init(self, _context: object) -> None:
        if self.cause is not None and self.outcome is not Outcome.SERVER_CRASHED:
            raise ValueError(f"a cause is only given for server_crashed, not {self.outcome}")
        if self.outcome is Outcome.SERVER_CRASHED and self.cause is None:
            raise ValueError("server_crashed needs a cause")
