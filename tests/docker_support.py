"""Test images made offline (no registry is reachable): a root filesystem holding the host's
Debian Python 3.11, the shared libraries it and its extension modules need, and the packages
isobench's simulated server imports, loaded with ``docker import``."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

BASE_REPOSITORY = "isobench-test/python"
PYTHON = Path("/usr/bin/python3.11")
STDLIB = Path("/usr/lib/python3.11")
SITE = Path(sys.prefix) / "lib" / "python3.11" / "site-packages"
SIM_PACKAGES = (
    "aiohttp",
    "aiosignal",
    "aiohappyeyeballs",
    "attr",
    "attrs",
    "frozenlist",
    "multidict",
    "propcache",
    "yarl",
    "idna",
    "pydantic",
    "pydantic_core",
    "typing_extensions.py",
    "annotated_types",
    "typing_inspection",
)
SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data"}
_LDD = re.compile(r"(/\S+\.so[\w.]*)")
REPO = Path(__file__).resolve().parent.parent


def _libraries(binaries: list[Path]) -> set[Path]:
    found: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        found.update(Path(p) for p in _LDD.findall(out))
    return found


def _add(tar: tarfile.TarFile, source: Path, target: str) -> None:
    tar.add(
        str(source),
        arcname=target,
        recursive=True,
        filter=lambda info: None if "__pycache__" in info.name else info,
    )


def _rootfs() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, PYTHON, "usr/bin/python3.11")
        for link in ("usr/bin/python3", "usr/bin/python"):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "python3.11"
            tar.addfile(info)
        for entry in STDLIB.iterdir():
            if entry.name not in SKIP_STDLIB and entry.name != "site-packages":
                _add(tar, entry, f"usr/lib/python3.11/{entry.name}")
        extensions = list(STDLIB.glob("lib-dynload/*.so"))
        for name in SIM_PACKAGES:
            _add(tar, SITE / name, f"usr/lib/python3/dist-packages/{name}")
            extensions += list((SITE / name).rglob("*.so")) if (SITE / name).is_dir() else []
        # isobench's simulated server and nothing else of isobench.
        for rel in ("isobench/__init__.py", "tasks/__init__.py", "tasks/sim_server.py"):
            target = rel if rel.startswith("isobench/") else f"isobench/{rel}"
            _add(tar, REPO / rel, f"usr/lib/python3/dist-packages/{target}")
        for lib in _libraries([PYTHON, *extensions]):
            real = lib.resolve()
            _add(tar, real, str(lib).lstrip("/"))
        for folder in ("tmp", "workspace"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
    return buf.getvalue()


def _base_tag() -> str:
    # Named by what goes in, so a change of the server or of a package makes a new image.
    digest = hashlib.sha256()
    digest.update(repr(SIM_PACKAGES).encode())
    digest.update((REPO / "tasks" / "sim_server.py").read_bytes())
    for dist in sorted(SITE.glob("*.dist-info")):
        digest.update(dist.name.encode())
    return f"3.11-sim-{digest.hexdigest()[:12]}"


def base_image(client: docker.DockerClient) -> str:
    """The base image's id, importing it when the engine does not have it yet."""
    ref = f"{BASE_REPOSITORY}:{_base_tag()}"
    try:
        return client.images.get(ref).id
    except ImageNotFound:
        pass
    repository, tag = ref.split(":")
    client.api.import_image_from_data(_rootfs(), repository=repository, tag=tag)
    return client.images.get(ref).id


def source_image(client: docker.DockerClient, repo: Path, commit: str, tag: str) -> str:
    """An image of one commit of ``repo``: the base plus the commit's files in /workspace."""
    try:
        return client.images.get(tag).id
    except ImageNotFound:
        pass
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "--prefix=workspace/", commit],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = f"FROM {base_image(client)}\nADD src.tar /\nWORKDIR /workspace\n".encode()
        for name, data in (("Dockerfile", dockerfile), ("src.tar", archive)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, network_mode="none")
    return client.images.get(tag).id
