"""patch-apply on real git checkouts: all or nothing, and the method that worked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from isobench.models.outcomes import Outcome
from isobench.tasks.patch_apply import StepFailure, apply_patch

LIMIT = 1024 * 1024
BASE = "".join(f"line {i}\n" for i in range(1, 31))


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "--quiet")
    (tmp_path / "mod.py").write_text(BASE)
    git(tmp_path, "add", "mod.py")
    git(tmp_path, "commit", "--quiet", "-m", "base")
    return tmp_path


def diff_for(repo: Path, new: str) -> bytes:
    (repo / "mod.py").write_text(new)
    patch = git(repo, "diff")
    git(repo, "checkout", "--quiet", "mod.py")
    return patch.encode()


def test_clean_apply_uses_git_apply(repo: Path) -> None:
    patch = diff_for(repo, BASE.replace("line 10\n", "line ten\n"))
    result = apply_patch(repo, patch, max_bytes=LIMIT)
    assert result.method == "git-apply"
    assert "line ten" in (repo / "mod.py").read_text()


@pytest.mark.parametrize(
    ("keep_index", "method"),
    [(True, "git-apply-3way"), (False, "patch-fuzz")],
    ids=["blob-ids-known", "no-blob-ids"],
)
def test_drifted_context_falls_back(repo: Path, keep_index: bool, method: str) -> None:
    patch = diff_for(repo, BASE.replace("line 10\n", "line ten\n"))
    if not keep_index:  # a diff not made by git (or from another history): no 3-way possible
        patch = b"".join(ln for ln in patch.splitlines(True) if not ln.startswith(b"index "))
    # The tree drifted since the diff was made: a context line changed.
    (repo / "mod.py").write_text(BASE.replace("line 8\n", "line eight\n"))
    git(repo, "commit", "--quiet", "-am", "drift")
    result = apply_patch(repo, patch, max_bytes=LIMIT)
    assert result.method == method
    text = (repo / "mod.py").read_text()
    assert "line ten" in text and "line eight" in text


def test_a_patch_that_does_not_apply_leaves_the_tree_untouched(repo: Path) -> None:
    patch = diff_for(repo, BASE.replace("line 10\n", "line ten\n").replace("line 20\n", "xx\n"))
    # Both hunks' targets are gone: neither git nor patch (fuzz 2) can place them.
    (repo / "mod.py").write_text("".join(f"other {i}\n" for i in range(1, 31)))
    git(repo, "commit", "--quiet", "-am", "rewrite")
    with pytest.raises(StepFailure) as exc:
        apply_patch(repo, patch, max_bytes=LIMIT)
    outcome = exc.value.outcome
    assert outcome.outcome is Outcome.PATCH_FAILED
    assert outcome.reason.startswith("patch does not apply: patch failed: mod.py:")
    assert (
        "git apply --check" in exc.value.logs["patch"]
        and "patch --dry-run" in exc.value.logs["patch"]
    )
    assert git(repo, "status", "--porcelain") == ""  # nothing half-applied, no .rej/.orig left


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        (b"", "empty"),
        (b"please make it faster\n", "not_unified"),
        (b"--- a/../../etc/x\n+++ b/../../etc/x\n@@ -1 +1 @@\n-a\n+b\n", "unsafe_path"),
        (b"--- /abs/x\n+++ /abs/x\n@@ -1 +1 @@\n-a\n+b\n", "unsafe_path"),
    ],
)
def test_refused_before_any_apply(repo: Path, patch: bytes, words: str) -> None:
    with pytest.raises(StepFailure) as exc:
        apply_patch(repo, patch, max_bytes=LIMIT)
    assert exc.value.outcome.outcome is Outcome.PATCH_FAILED
    assert words in exc.value.outcome.reason
    assert git(repo, "status", "--porcelain") == ""


def test_too_large(repo: Path) -> None:
    patch = diff_for(repo, BASE + "x" * 5000 + "\n")
    with pytest.raises(StepFailure, match="too_large"):
        apply_patch(repo, patch, max_bytes=1000)
