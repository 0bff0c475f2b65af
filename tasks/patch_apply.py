"""Apply an agent's patch to a source tree, all of it or none of it.

The patch is checked first (``patch_check``): empty, binary, not a unified diff, too large,
absolute or ``..`` paths and symlinks are refused. Then ``git apply --check`` and the apply
itself; failing that a three-way apply (``git apply -3``); failing that GNU ``patch`` with a
fuzz of at most 2, after a dry run. The method that worked is recorded. A patch that does not
apply in full is ``patch_failed`` with the tool's own message: nothing is forced through and
no partial apply is ever measured.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from isobench.models.domain import PatchStatus
from isobench.models.flags import Flag
from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.tasks.patch_check import PatchInspection, inspect_patch

MAX_FUZZ = 2
COMMAND_TIMEOUT_S = 120


class StepFailure(Exception):
    """A pipeline step ended the attempt; ``outcome`` says how and shows the evidence."""

    def __init__(self, outcome: OutcomeRecord, logs: dict[str, str] | None = None) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome
        self.logs = logs or {}

    @classmethod
    def of(cls, outcome: Outcome, reason: str, log: str = "", stream: str = "") -> StepFailure:
        """A failure whose evidence is the tail of ``log``, kept whole under ``stream``."""
        record = OutcomeRecord(outcome=outcome, reason=reason[:500], evidence=log[-2000:])
        return cls(record, {stream: log} if stream and log else None)


@dataclass(frozen=True)
class ApplyResult:
    method: str  # git-apply, git-apply-3way or patch-fuzz
    inspection: PatchInspection
    log: str
    flags: list[str] = field(default_factory=list)


def _run(args: list[str], cwd: Path, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        args, cwd=cwd, input=stdin, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False
    )


def _out(proc: subprocess.CompletedProcess[bytes]) -> str:
    return (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()


def _failed(reason: str, evidence: str) -> StepFailure:
    return StepFailure.of(Outcome.PATCH_FAILED, reason, evidence, "patch")


def apply_patch(
    tree: Path, data: bytes, *, max_bytes: int, allow_unsafe: bool = False
) -> ApplyResult:
    """Apply ``data`` to the git checkout at ``tree``; raise StepFailure(patch_failed)."""
    found = inspect_patch(data, max_bytes=max_bytes)
    if found.status is not PatchStatus.OK:
        raise _failed(f"patch refused ({found.status.value}): {found.reason}", found.reason)
    refused = {Flag.UNSAFE_PATH, Flag.SYMLINK} & set(found.flags)
    if refused and not allow_unsafe:
        names = ", ".join(sorted(f.value for f in refused))
        raise _failed(
            f"patch refused: {names} in {', '.join(found.files_touched)}",
            "\n".join(found.files_touched),
        )
    log: list[str] = []
    check = _run(["git", "apply", "--check", "--whitespace=nowarn", "-"], tree, data)
    if check.returncode == 0:
        done = _run(["git", "apply", "--whitespace=nowarn", "-"], tree, data)
        if done.returncode == 0:
            return ApplyResult("git-apply", found, _out(done), [str(f) for f in found.flags])
    log.append(f"$ git apply --check\n{_out(check)}")
    three_way = _run(["git", "apply", "-3", "--whitespace=nowarn", "-"], tree, data)
    if three_way.returncode == 0:
        return ApplyResult("git-apply-3way", found, _out(three_way), [str(f) for f in found.flags])
    log.append(f"$ git apply -3\n{_out(three_way)}")
    # git apply -3 may leave conflict markers or a half-updated index behind: start clean.
    _run(["git", "reset", "--hard", "--quiet"], tree, b"")
    _run(["git", "clean", "-fdq"], tree, b"")
    patch_args = [
        "patch",
        "-p1",
        f"--fuzz={MAX_FUZZ}",
        "--forward",
        "--batch",
        "--no-backup-if-mismatch",
    ]
    dry = _run([*patch_args, "--dry-run"], tree, data)
    log.append(f"$ patch --dry-run --fuzz={MAX_FUZZ}\n{_out(dry)}")
    if dry.returncode == 0:
        done = _run(patch_args, tree, data)
        if done.returncode == 0:
            return ApplyResult("patch-fuzz", found, _out(done), [str(f) for f in found.flags])
        log.append(_out(done))
    text = "\n".join(log)
    first = next(
        (ln for ln in _out(check).splitlines() if ln.startswith("error:")), "patch does not apply"
    )
    raise _failed(f"patch does not apply: {first.removeprefix('error: ')}", text)
