"""What a worker host says about itself: the runtime its arms use and the GPUs it offers.

Deployments carry what to measure; the host carries how (``ISOBENCH_RUNTIME``, JSON or
``ISOBENCH_RUNTIME__KIND=docker``-style variables, and ``ISOBENCH_GPUS``), so one deployment
serves every GPU host that runs a worker for its pool.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from isobench.runtimes.factory import RuntimeSpec

NVIDIA_SMI_TIMEOUT_S = 30


class HostSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ISOBENCH_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    runtime: RuntimeSpec | None = Field(
        None, description="How this host runs arms: the process or docker runtime's settings."
    )
    gpus: Annotated[list[str] | None, NoDecode] = Field(
        None, description="GPU ids this host offers ('0,1' or a JSON list); default: nvidia-smi's."
    )

    parallel_arms: int = Field(
        1,
        ge=1,
        le=64,
        description="Arms one flow measures at once, each on its own free GPUs. Above 1 the "
        "servers and load generators share the host's CPUs: check the client health flags.",
    )

    @field_validator("gpus", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return [str(v) for v in json.loads(text)]
            return [part.strip() for part in text.split(",") if part.strip()]
        return value


def detect_gpus() -> list[str]:
    """The GPU indexes nvidia-smi lists; empty where there is no NVIDIA driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def host_gpus(given: list[str] | None = None, host: HostSettings | None = None) -> list[str]:
    """The flow's GPUs: as given, else the host's setting, else nvidia-smi's, else GPU 0 (a
    host without NVIDIA GPUs still serialises its servers on one slot)."""
    return given or (host or HostSettings()).gpus or detect_gpus() or ["0"]


def host_runtime(given: RuntimeSpec | None = None, host: HostSettings | None = None) -> RuntimeSpec:
    if given is not None:
        return given
    runtime = (host or HostSettings()).runtime
    if runtime is None:
        raise ValueError(
            "no runtime: pass the flow's 'runtime' parameter or set ISOBENCH_RUNTIME on the "
            "worker host (see deploy/README.md)"
        )
    return runtime
