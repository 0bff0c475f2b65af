"""Read a patch before anything applies it: is it a unified diff, what does it touch, and is
there anything in it that must not be applied blindly?

Pure functions over bytes; used when patches are loaded and again by the patch-apply step.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from isobench.models.domain import PatchStatus
from isobench.models.flags import Flag

_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.MULTILINE)
_DIFF_GIT = re.compile(rb"^diff --git a/(\S+) b/(\S+)", re.MULTILINE)
# A file header is a '---' line directly followed by a '+++' line; a removed line that
# happens to start with '-- ' is not one.
_FILE_HEADER = re.compile(rb"^--- (\S+)[^\n]*\n\+\+\+ (\S+)", re.MULTILINE)
_BINARY = re.compile(rb"^(GIT binary patch|Binary files .* differ)$", re.MULTILINE)
_SYMLINK = re.compile(rb"^(new|deleted) file mode 120000$|^(old|new) mode 120000$", re.MULTILINE)

# Files a harness writes next to an agent's work; a patch that carries them is contaminated.
HARNESS_FILES = ("model_patch.diff",)
# Paths whose change would alter the measurement instead of the code under test.
BENCHMARK_PATHS = ("benchmarks/",)
# Sources that need a compile step: changing them means rebuilding, not copying files.
COMPILED_SUFFIXES = (".cu", ".cuh", ".cpp", ".cc", ".c", ".h", ".hpp", "CMakeLists.txt", ".cmake")


@dataclass(frozen=True)
class PatchInspection:
    sha256: str
    size_bytes: int
    status: PatchStatus
    reason: str = ""
    files_touched: list[str] = field(default_factory=list)
    hunks: int = 0
    flags: list[str] = field(default_factory=list)


def _strip_prefix(path: bytes) -> str | None:
    text = path.decode("utf-8", "replace")
    if text == "/dev/null":
        return None
    return text[2:] if text[:2] in ("a/", "b/") else text


def _touched_files(data: bytes) -> list[str]:
    files: list[str] = []
    for a, b in _DIFF_GIT.findall(data):
        files.extend(p for p in (_strip_prefix(a), _strip_prefix(b)) if p)
    for a, b in _FILE_HEADER.findall(data):
        files.extend(p for p in (_strip_prefix(a), _strip_prefix(b)) if p)
    return sorted(set(files))


def _is_unsafe(path: str) -> bool:
    return path.startswith("/") or ".." in path.split("/")


def inspect_patch(data: bytes, *, max_bytes: int) -> PatchInspection:
    """Classify a patch and list what it touches. Never raises on bad content."""
    sha = hashlib.sha256(data).hexdigest()
    size = len(data)
    common = {"sha256": sha, "size_bytes": size}
    if size > max_bytes:
        return PatchInspection(
            **common,
            status=PatchStatus.TOO_LARGE,
            reason=f"patch is {size / 1e6:.1f} MB, over the limit of {max_bytes / 1e6:.1f} MB",
        )
    if not data.strip():
        return PatchInspection(**common, status=PatchStatus.EMPTY, reason="patch is empty")
    files = _touched_files(data)
    hunks = len(_HUNK.findall(data))
    if _BINARY.search(data) or b"\x00" in data:
        return PatchInspection(
            **common,
            status=PatchStatus.BINARY,
            reason="patch holds binary content (a binary hunk or NUL bytes)",
            files_touched=files,
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return PatchInspection(
            **common,
            status=PatchStatus.BINARY,
            reason=f"patch is not UTF-8 text (byte {exc.start})",
            files_touched=files,
        )
    renames_only = bool(_DIFF_GIT.search(data)) and hunks == 0
    if not files or (hunks == 0 and not renames_only):
        return PatchInspection(
            **common,
            status=PatchStatus.NOT_UNIFIED,
            reason="no unified-diff file headers (--- / +++) with @@ hunks found",
            files_touched=files,
        )
    flags: list[str] = []
    if any(f.rsplit("/", 1)[-1] in HARNESS_FILES for f in files):
        flags.append(Flag.HARNESS_FILE)
    if any(f.startswith(BENCHMARK_PATHS) for f in files):
        flags.append(Flag.BENCHMARK_SCRIPT)
    if any(f.endswith(COMPILED_SUFFIXES) for f in files):
        flags.append(Flag.NEEDS_REBUILD)
    if any(_is_unsafe(f) for f in files):
        flags.append(Flag.UNSAFE_PATH)
    if _SYMLINK.search(data):
        flags.append(Flag.SYMLINK)
    return PatchInspection(
        **common, status=PatchStatus.OK, files_touched=files, hunks=hunks, flags=flags
    )


def split_patch(text: str) -> list[tuple[str, str]]:
    """The per-file sections of a unified diff, each with the path it changes."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, ln in enumerate(lines) if ln.startswith("diff --git ")]
    if not starts:
        starts = [
            i
            for i, ln in enumerate(lines)
            if ln.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")
        ]
    sections: list[tuple[str, str]] = []
    for begin, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        chunk = "".join(lines[begin:end])
        paths = _touched_files(chunk.encode())
        sections.append((paths[0] if paths else "", chunk))
    return sections
