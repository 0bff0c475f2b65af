"""Build a runtime from its serialisable spec (flow parameters carry the spec, not the object)."""

from __future__ import annotations

from isobench.runtimes.base import Runtime
from isobench.runtimes.process import ProcessRuntime, ProcessRuntimeSpec

RuntimeSpec = ProcessRuntimeSpec


def make_runtime(spec: RuntimeSpec) -> Runtime:
    if spec.kind == "process":
        return ProcessRuntime(spec)
    raise ValueError(f"unknown runtime kind {spec.kind!r}")
