"""Patch inspection: what a patch touches and why one is rejected."""

from __future__ import annotations

import hashlib

from isobench.models.domain import PatchStatus
from isobench.models.flags import Flag
from isobench.tasks.patch_check import inspect_patch

LIMIT = 5 * 1024 * 1024

GOOD = b"""diff --git a/vllm/utils.py b/vllm/utils.py
index 1111111..2222222 100644
--- a/vllm/utils.py
+++ b/vllm/utils.py
@@ -1,3 +1,3 @@
 import os
--- removed line that looks like a header
+x = 1
 y = 2
"""


def test_unified_diff_lists_files_and_hunks() -> None:
    found = inspect_patch(GOOD, max_bytes=LIMIT)
    assert found.status is PatchStatus.OK
    assert found.files_touched == ["vllm/utils.py"]
    assert found.hunks == 1
    assert found.sha256 == hashlib.sha256(GOOD).hexdigest()
    assert found.flags == []


def test_new_file_from_dev_null() -> None:
    patch = b"--- /dev/null\n+++ b/csrc/new_kernel.cu\n@@ -0,0 +1 @@\n+__global__ void k() {}\n"
    found = inspect_patch(patch, max_bytes=LIMIT)
    assert found.files_touched == ["csrc/new_kernel.cu"]
    assert Flag.NEEDS_REBUILD in found.flags


def test_flags_harness_benchmark_and_unsafe_paths() -> None:
    patch = (
        b"--- a/model_patch.diff\n+++ b/model_patch.diff\n@@ -1 +1 @@\n-a\n+b\n"
        b"--- a/benchmarks/benchmark_serving.py\n+++ b/benchmarks/benchmark_serving.py\n"
        b"@@ -1 +1 @@\n-a\n+b\n"
        b"--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n"
    )
    found = inspect_patch(patch, max_bytes=LIMIT)
    assert found.status is PatchStatus.OK
    assert {Flag.HARNESS_FILE, Flag.BENCHMARK_SCRIPT, Flag.UNSAFE_PATH} <= set(found.flags)


def test_empty_and_whitespace_patches() -> None:
    assert inspect_patch(b"", max_bytes=LIMIT).status is PatchStatus.EMPTY
    assert inspect_patch(b"\n  \n", max_bytes=LIMIT).status is PatchStatus.EMPTY


def test_binary_patches() -> None:
    git_binary = b"diff --git a/x.bin b/x.bin\nGIT binary patch\nliteral 3\nabc\n"
    assert inspect_patch(git_binary, max_bytes=LIMIT).status is PatchStatus.BINARY
    assert inspect_patch(GOOD + b"\x00\x01", max_bytes=LIMIT).status is PatchStatus.BINARY
    latin1 = GOOD.replace(b"x = 1", b"x = '\xe9'")
    found = inspect_patch(latin1, max_bytes=LIMIT)
    assert found.status is PatchStatus.BINARY and "UTF-8" in found.reason


def test_prose_is_not_a_unified_diff() -> None:
    found = inspect_patch(b"I made utils.py faster by caching.\n", max_bytes=LIMIT)
    assert found.status is PatchStatus.NOT_UNIFIED
    headers_without_hunks = b"--- a/x.py\n+++ b/x.py\nno hunks here\n"
    assert inspect_patch(headers_without_hunks, max_bytes=LIMIT).status is PatchStatus.NOT_UNIFIED


def test_rename_only_git_diff_is_accepted() -> None:
    rename = (
        b"diff --git a/old.py b/new.py\nsimilarity index 100%\n"
        b"rename from old.py\nrename to new.py\n"
    )
    found = inspect_patch(rename, max_bytes=LIMIT)
    assert found.status is PatchStatus.OK
    assert found.files_touched == ["new.py", "old.py"]


def test_twenty_megabyte_patch_is_too_large() -> None:
    big = GOOD + b"+" + b"x" * (20 * 1024 * 1024) + b"\n"
    found = inspect_patch(big, max_bytes=LIMIT)
    assert found.status is PatchStatus.TOO_LARGE
    assert "21.0 MB" in found.reason and "5.2 MB" in found.reason
    assert found.size_bytes == len(big)


def test_split_patch_by_file() -> None:
    from isobench.tasks.patch_check import split_patch

    two = GOOD.decode() + (
        "diff --git a/csrc/k.cu b/csrc/k.cu\n--- a/csrc/k.cu\n+++ b/csrc/k.cu\n"
        "@@ -1 +1 @@\n-a\n+b\n"
    )
    sections = split_patch(two)
    assert [path for path, _ in sections] == ["vllm/utils.py", "csrc/k.cu"]
    assert "".join(text for _, text in sections) == two
    plain = (
        "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n--- a/y.py\n+++ b/y.py\n@@ -1 +1 @@\n-c\n+d\n"
    )
    assert [path for path, _ in split_patch(plain)] == ["x.py", "y.py"]
