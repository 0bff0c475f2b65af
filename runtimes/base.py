"""The runtime interface. Everything that crosses it is a small serialisable model, so that
pipeline steps can pass it between Prefect tasks and a later process can clean up after a
crashed one."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

from pydantic import BaseModel, ConfigDict, Field

from isobench.models.domain import AgentPatch, Arm, BenchmarkConfig, Task

LABEL_KEY = "isobench.run"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    return _UNSAFE.sub("_", text)


class ArmJob(BaseModel):
    """One arm of one task to prepare and measure."""

    model_config = ConfigDict(frozen=True)

    task: Task
    arm: Arm
    agent: str | None = None
    patch: AgentPatch | None = None
    config: BenchmarkConfig
    run_label: str = Field(description="The sweep's id; servers carry it so strays can be found.")
    gpus: list[str] | None = Field(
        None, description="The GPUs whose slots the arm holds while it is measured."
    )
    digest: str = Field(
        "-", description="The image digest the runtime gave when the arm was planned."
    )

    @property
    def commit(self) -> str:
        commit = self.task.human_commit if self.arm is Arm.HUMAN else self.task.parent_commit
        if commit is None:
            raise ValueError(f"task {self.task.task_id} has no parent commit")
        return commit

    @property
    def name(self) -> str:
        who = f" {self.agent}" if self.agent else ""
        return f"{self.arm.value} {self.task.task_id}{who}"


class Prepared(BaseModel):
    """What ``prepare`` made: an image (docker) or a source tree (process)."""

    image_ref: str
    image_digest: str
    apply_method: str | None = None
    flags: list[str] = Field(default_factory=list)
    logs: dict[str, str] = Field(default_factory=dict)
    cache_hit: bool = False


class ServerInfo(BaseModel):
    """A started server: enough to reach it, read its log and stop it from any process."""

    url: str
    handle: str  # process group id or container id
    log_path: str | None = None


class CommandResult(BaseModel):
    exit_code: int | None  # None: killed at the timeout
    output: str


class Runtime(ABC):
    name: str

    @abstractmethod
    def identity(self, job: ArmJob) -> str:
        """The digest ``prepare`` will report, when it can be known before building."""

    @abstractmethod
    def prepare(self, job: ArmJob) -> Prepared:
        """Apply the patch and build; raise StepFailure (patch_failed, build_failed)."""

    @abstractmethod
    def start_server(self, job: ArmJob, prepared: Prepared, port: int) -> ServerInfo: ...

    @abstractmethod
    def exit_code(self, server: ServerInfo) -> int | None:
        """None while the server runs."""

    @abstractmethod
    def logs(self, server: ServerInfo) -> str: ...

    @abstractmethod
    def stop_server(self, server: ServerInfo) -> None:
        """Stop and remove; safe to call twice and on a server that already exited."""

    @abstractmethod
    def run_command(
        self, job: ArmJob, prepared: Prepared, args: list[str], timeout_s: float
    ) -> CommandResult:
        """Run a command with the arm's code (a benchmark script), killed at the timeout.
        ``{python}`` in ``args`` is the runtime's interpreter."""

    @abstractmethod
    def stop_labelled(self, label: str) -> list[str]:
        """Stop every server of one run (a cancelled or crashed flow's clean-up)."""

    @abstractmethod
    def sweep_stale(self) -> list[str]:
        """Stop servers whose orchestrating process died, whatever their run (a flow run
        retried from the UI keeps its id); returns what it stopped."""
