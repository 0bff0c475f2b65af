"""Flags: things worth a user's attention that do not change an outcome on their own, such as
an input that disagrees with itself or a run that was not measured as it should have been."""

from __future__ import annotations

from enum import StrEnum


class Flag(StrEnum):
    # Found in a patch.
    HARNESS_FILE = "touches_harness_file"  # carries a harness's own file (model_patch.diff)
    BENCHMARK_SCRIPT = "touches_benchmark_scripts"  # edits what measures it
    NEEDS_REBUILD = "needs_rebuild"  # CUDA/C++/CMake sources: a file copy is not enough
    UNSAFE_PATH = "unsafe_path"  # absolute path or '..'
    SYMLINK = "symlink"
    # Found in a run's log or record.
    PARTIAL_APPLY = "partial_apply"  # hunks failed and the patch was forced through
    NOT_APPLIED_OUTSIDE_PACKAGE = "not_applied_outside_package"  # by the task's rule, recorded
    MODEL_OVERRIDE = "model_override"  # the harness served another model than the task's
    ENVIRONMENT_MODIFIED = "environment_modified"  # packages or files changed at run time
    STATUS_DISAGREES = "status_disagrees"  # the record's own status says otherwise
    METRICS_DISAGREE = "metrics_disagree"  # the record's metrics differ from its log
    MODEL_MISMATCH = "model_mismatch"  # the record's model is not the task's
    MULTIPLE_RESULTS = "multiple_results"  # several different result blocks in one log
