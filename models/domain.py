"""Domain models: tasks, agent patches, arms, benchmark configurations and run records.

These are the types that cross every boundary (intake, pipeline, database, report); the
SQLAlchemy tables in ``tables.py`` store them and ``isobench.store`` converts between the two.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from isobench.models.metrics import Metrics
from isobench.models.outcomes import OutcomeRecord

VLLM_REPO_URL = "https://github.com/vllm-project/vllm"

FullSha = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-fA-F]{40}$", strip_whitespace=True, to_lower=True)
]
"""A full 40-hex git commit id (short ids are ambiguous over a long history)."""

TaskId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
AgentName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,99}$", strip_whitespace=True)
]


def _strict() -> ConfigDict:
    return ConfigDict(extra="forbid", use_enum_values=False)


class Arm(StrEnum):
    """The three images measured side by side for every task."""

    BASELINE = "baseline"  # the parent commit
    HUMAN = "human"  # the human optimization commit
    AGENT = "agent"  # baseline + the agent's patch


class BenchmarkKind(StrEnum):
    SERVING = "serving"  # online: a server under a load generator
    THROUGHPUT = "throughput"  # offline: benchmark_throughput.py / vllm bench throughput
    LATENCY = "latency"  # offline: benchmark_latency.py / vllm bench latency


class BenchmarkSpec(BaseModel):
    """The benchmark a task names: its command as given and the kind read from it."""

    model_config = _strict()

    kind: BenchmarkKind | None = None
    command: str | None = None
    mode_as_given: str | None = Field(
        None, description="The source's own label (serving, standalone, ...), kept verbatim."
    )


class Task(BaseModel):
    """One optimization commit: the human commit, its parent, the model and the benchmark."""

    model_config = _strict()

    task_id: TaskId
    repo_url: str = VLLM_REPO_URL
    human_commit: FullSha
    parent_commit: FullSha | None = None
    model: str | None = None
    benchmark: BenchmarkSpec = Field(default_factory=BenchmarkSpec)
    gpus: int = Field(1, ge=1, le=64, description="GPUs the benchmark needs (tensor parallel).")
    notes: str = ""
    aliases: list[str] = Field(
        default_factory=list, description="Other names patches use for it (vllm_core-0005)."
    )
    problems: list[str] = Field(
        default_factory=list, description="Why this task cannot run as given; empty if it can."
    )
    warnings: list[str] = Field(
        default_factory=list, description="Where the source disagrees with itself, but it can run."
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Fields of the source row isobench has no column for."
    )

    @property
    def runnable(self) -> bool:
        return not self.problems


class PatchStatus(StrEnum):
    OK = "ok"
    EMPTY = "empty"
    BINARY = "binary"
    NOT_UNIFIED = "not_unified"
    TOO_LARGE = "too_large"


class AgentPatch(BaseModel):
    """An agent's diff against a task's parent commit, as received, with what a check found."""

    model_config = _strict()

    agent: AgentName
    task_id: TaskId
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    diff: str | None = Field(None, description="The diff text; None when not kept (too large).")
    files_touched: list[str] = Field(default_factory=list)
    status: PatchStatus = PatchStatus.OK
    reason: str = ""
    flags: list[str] = Field(default_factory=list)
    source_path: str | None = None


class Endpoint(StrEnum):
    COMPLETIONS = "completions"  # /v1/completions
    CHAT = "chat"  # /v1/chat/completions


class BenchmarkClient(StrEnum):
    LOADGEN = "loadgen"  # isobench's own load generator: the same client for every arm
    SCRIPT = "script"  # the task's own benchmark command, run with the image's code


class BenchmarkConfig(BaseModel):
    """How an arm is measured. Its ``config_hash`` names the measurement for reuse and reports.

    The defaults are the source report's recommendation for comparable latency figures:
    1 request/s, 100 prompts of 1000 input and 100 output tokens, ignore-eos.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: BenchmarkKind = BenchmarkKind.SERVING
    client: BenchmarkClient = BenchmarkClient.LOADGEN
    endpoint: Endpoint = Endpoint.COMPLETIONS
    input_len: int = Field(1000, ge=1)
    input_range_ratio: float = Field(
        0.0, ge=0, lt=1, description="prompt lengths drawn from input_len * (1 +/- ratio)"
    )
    output_len: int = Field(100, ge=1)
    num_prompts: int = Field(100, ge=1)
    warmup_requests: int = Field(1, ge=0, description="sent first, left out of the figures")
    request_rate: float | None = Field(1.0, gt=0, description="req/s; None sends all at once")
    burstiness: float = Field(1.0, gt=0, description="gamma shape; 1.0 is a Poisson process")
    max_concurrency: int | None = Field(None, ge=1)
    ignore_eos: bool = True
    percentiles: tuple[float, ...] = (50.0, 90.0, 99.0)
    repeats: int = Field(3, ge=1, le=100)
    seed: int = 0

    @field_validator("percentiles")
    @classmethod
    def _sorted_unique(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < p < 100 for p in value):
            raise ValueError("percentiles must lie strictly between 0 and 100")
        return tuple(sorted({float(p) for p in value}))

    @property
    def config_hash(self) -> str:
        """A stable content hash. ``repeats`` is left out on purpose: more repeats add samples
        of the same measurement, they do not make a different one."""
        payload = self.model_dump(mode="json", exclude={"repeats"})
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


WORKLOAD_PRESETS: dict[str, BenchmarkConfig] = {
    # The source report's recommendation for comparable latency figures.
    "recommended": BenchmarkConfig(),
    # What the source report's old runs used: 100 prompts of 200 input and 64 output tokens,
    # all sent at once, so old and new numbers can be told apart and reproduced.
    "legacy": BenchmarkConfig(input_len=200, output_len=64, num_prompts=100, request_rate=None),
}


class Selection(BaseModel):
    """Which arms a flow measures: tasks (all loaded, or a dataset file's, or named ones),
    agents and arms. A flow parameter, so the Prefect UI shows it as a form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = Field(
        None,
        description="A task file on the worker host (.json, .jsonl or .csv, as 'isobench tasks "
        "load' reads it): its tasks are loaded (added or updated) and measured.",
    )
    tasks: list[TaskId] | None = Field(None, description="Only these task ids.")
    agents: list[AgentName] | None = Field(None, description="Only these agents' patches.")
    arms: list[Arm] = Field(
        default_factory=lambda: list(Arm), min_length=1, description="Arms to measure."
    )


class Timeouts(BaseModel):
    """Hard limits, enforced by the steps themselves (process kill, request cancellation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_start_s: float = Field(300.0, gt=0, description="Until /health and /v1/models answer.")
    benchmark_s: float = Field(900.0, gt=0, description="For all repeats of the benchmark.")


class RunSource(StrEnum):
    PIPELINE = "pipeline"
    IMPORT = "import"


class RunRecord(BaseModel):
    """One attempt at one arm of one task: what ran, where, how it ended and what it measured."""

    model_config = _strict()

    task_id: TaskId
    arm: Arm
    agent: AgentName | None = None
    patch_sha256: str | None = None
    config_hash: str
    config: dict[str, Any] = Field(default_factory=dict)
    attempt: int = Field(1, ge=1)
    dedup_key: str = Field(
        "", description="Identity of this attempt: set when it is stored; never stored twice."
    )
    source: RunSource = RunSource.PIPELINE
    outcome: OutcomeRecord
    metrics: Metrics | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    host: str | None = None
    gpu: str | None = None
    image_ref: str | None = None
    image_digest: str | None = None
    orchestration_run_id: str | None = None
    model: str | None = Field(None, description="The model actually served.")
    client: str | None = Field(None, description="The benchmark client actually used.")
    flags: list[str] = Field(
        default_factory=list, description="Where the input disagreed with itself or the run."
    )
    step_timings: dict[str, float] = Field(default_factory=dict)
    logs: dict[str, str] = Field(default_factory=dict, description="stream -> bounded tail")
