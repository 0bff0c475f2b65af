"""Build a runtime from its serialisable spec (flow parameters carry the spec, not the object)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from isobench.runtimes.base import Runtime
from isobench.runtimes.docker import DockerRuntime, DockerRuntimeSpec
from isobench.runtimes.process import ProcessRuntime, ProcessRuntimeSpec

RuntimeSpec = Annotated[ProcessRuntimeSpec | DockerRuntimeSpec, Field(discriminator="kind")]


def make_runtime(spec: ProcessRuntimeSpec | DockerRuntimeSpec) -> Runtime:
    if isinstance(spec, DockerRuntimeSpec):
        return DockerRuntime(spec)
    return ProcessRuntime(spec)
