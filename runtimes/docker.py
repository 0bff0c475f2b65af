"""The docker runtime: baseline and human arms run their commit's image; the agent's image is
the baseline image plus the applied patch, built from a small generated context and tagged by
the baseline image id and the patch's sha256, so a second build is a cache hit.

Patches are applied with the same patch-apply as everywhere, to the image's own source tree
(``source_root``), copied out of the image into a scratch git repository; the files the patch
changed are copied back in a new layer. Servers run with host networking, the GPUs pinned by
device requests, a shared-memory size and a read-only model cache; every container carries the
sweep's label and its owner, so strays of a dead run are found and removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import docker
from docker.errors import (
    APIError,
    BuildError,
    ContainerError,
    DockerException,
    ImageNotFound,
    NotFound,
)
from docker.types import DeviceRequest
from pydantic import BaseModel, Field
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout

from isobench.models.flags import Flag
from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.runtimes.base import (
    LABEL_KEY,
    ArmJob,
    CommandResult,
    Prepared,
    Runtime,
    ServerInfo,
    safe_name,
)
from isobench.tasks.patch_apply import StepFailure, apply_patch
from isobench.tasks.patch_check import split_patch

OWNER_KEY = "isobench.owner"
AGENT_REPOSITORY = "isobench-agent"
# Kept on the agent image, so a cache hit still tells how the patch was applied.
APPLY_LABEL = "isobench.apply_method"
FLAGS_LABEL = "isobench.flags"
NOT_APPLIED_LABEL = "isobench.not_applied"
STOP_GRACE_S = 10
LOG_TAIL_LINES = 5000
DEFAULT_COMMAND = ["vllm", "serve", "{model}", "--host", "127.0.0.1", "--port", "{port}"]


class DockerRuntimeSpec(BaseModel):
    kind: Literal["docker"] = "docker"
    image_template: str = Field(
        description="The baseline/human image of a commit: {commit}, {commit12}, {task}."
    )
    source_root: str = Field("/workspace", description="The code under test inside the image.")
    package: str | None = Field(
        None,
        description="Release images install the code as a package (vllm) instead of keeping a "
        "checkout: found by importing it inside the image; the patch's files under "
        "'<package>/' are applied there.",
    )
    outside_package: Literal["refuse", "record"] = Field(
        "refuse",
        description="Hunks on files outside the package (csrc/, CMake, setup.py, tests/, "
        "benchmarks/): refuse the patch, or apply the rest and record them as not applied. "
        "Rebuilding from source is the slow path, done by building the image from the "
        "patched commit outside isobench.",
    )
    server_command: list[str] = Field(default_factory=lambda: list(DEFAULT_COMMAND))
    workdir: str = Field(description="Build contexts and scratch trees.")
    device_ids: list[str] | None = Field(
        None, description="GPU ids to pin for every arm (overrides pin_slot_gpus)."
    )
    pin_slot_gpus: bool = Field(
        False, description="Pin the GPUs whose slots the arm holds (a GPU host's setting)."
    )
    shm_size: str = "8g"
    model_cache: str | None = Field(None, description="Host folder mounted read-only.")
    model_cache_target: str = "/root/.cache/huggingface"
    max_patch_bytes: int = 5 * 1024 * 1024


def _infra(reason: str, evidence: str = "") -> StepFailure:
    return StepFailure.of(Outcome.INFRA_ERROR, reason, evidence)


def _patch_note(log: str, skipped: list[str]) -> str:
    if skipped:
        log += "\nnot applied (outside the package): " + ", ".join(skipped)
    return log


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host's run: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _git(tree: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=isobench", "-c", "user.email=isobench@localhost", *args]
    return subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=True).stdout


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, spec: DockerRuntimeSpec) -> None:
        self.spec = spec
        try:
            self.client = docker.from_env(timeout=600)
        except DockerException as exc:
            raise _infra(f"cannot reach the Docker engine: {exc}") from exc

    def _base_ref(self, job: ArmJob) -> str:
        commit = job.commit
        return self.spec.image_template.format(
            commit=commit, commit12=commit[:12], task=job.task.task_id
        )

    def _base_id(self, job: ArmJob) -> str:
        ref = self._base_ref(job)
        try:
            return self.client.images.get(ref).id
        except ImageNotFound as exc:
            raise _infra(f"image {ref} not found on this host", str(exc)) from exc
        except APIError as exc:
            raise _infra(f"Docker engine error looking up {ref}: {exc}") from exc

    def _recipe(self) -> str:
        """How a patch is laid into an image: the same patch laid in otherwise is another image."""
        spec = self.spec
        text = f"{spec.source_root}|{spec.package}|{spec.outside_package}"
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def _agent_digest(self, base: str, patch_sha: str) -> str:
        return f"{base}+patch:{patch_sha[:16]}+recipe:{self._recipe()}"

    def identity(self, job: ArmJob) -> str:
        try:
            base = self._base_id(job)
        except StepFailure:
            return f"missing:{self._base_ref(job)}"
        return base if job.patch is None else self._agent_digest(base, job.patch.sha256)

    def prepare(self, job: ArmJob) -> Prepared:
        base = self._base_id(job)
        if job.patch is None:
            return Prepared(image_ref=self._base_ref(job), image_digest=base, cache_hit=True)
        short = base.removeprefix("sha256:")[:12]
        tag = f"{AGENT_REPOSITORY}:{short}-{job.patch.sha256[:12]}-{self._recipe()}"
        digest = self._agent_digest(base, job.patch.sha256)
        try:
            labels = self.client.images.get(tag).labels or {}
            skipped_before = [f for f in labels.get(NOT_APPLIED_LABEL, "").split(",") if f]
            return Prepared(
                image_ref=tag,
                image_digest=digest,
                apply_method=labels.get(APPLY_LABEL),
                flags=[f for f in labels.get(FLAGS_LABEL, "").split(",") if f],
                logs={"patch": _patch_note(f"image {tag} built before", skipped_before)},
                cache_hit=True,
            )
        except ImageNotFound:
            pass
        scratch = Path(self.spec.workdir) / "builds" / safe_name(tag)
        diff, skipped, root = job.patch.diff or "", [], self.spec.source_root
        if self.spec.package:
            root = str(Path(self._package_dir(base)).parent)
            diff, skipped = self._package_part(diff)
        tree = self._source_tree(base, scratch, root, self.spec.package)
        applied = apply_patch(tree, diff.encode(), max_bytes=self.spec.max_patch_bytes)
        flags = list(applied.flags)
        if skipped:
            flags.append(str(Flag.NOT_APPLIED_OUTSIDE_PACKAGE))
        changed = [p for p in _git(tree, "diff", "--name-only").splitlines() if p]
        changed += [
            p for p in _git(tree, "ls-files", "--others", "--exclude-standard").splitlines() if p
        ]
        deleted = [
            p for p in _git(tree, "diff", "--name-only", "--diff-filter=D").splitlines() if p
        ]
        labels = {
            APPLY_LABEL: applied.method,
            FLAGS_LABEL: ",".join(flags),
            NOT_APPLIED_LABEL: ",".join(skipped),
        }
        files = sorted(set(changed) - set(deleted))
        log = self._build(base, tree, root, files, deleted, tag, job.patch.sha256, labels)
        return Prepared(
            image_ref=tag,
            image_digest=digest,
            apply_method=applied.method,
            flags=flags,
            logs={"patch": _patch_note(applied.log, skipped), "build": log},
        )

    def _package_dir(self, image: str) -> str:
        """Where the image's Python installed ``package``, found by importing it there."""
        probe = (
            "import importlib.util, os; "
            f"print(os.path.dirname(importlib.util.find_spec({self.spec.package!r}).origin))"
        )
        try:
            out = self.client.containers.run(
                image, ["python3", "-c", probe], remove=True, network_mode="none"
            )
        except ContainerError as exc:
            raise StepFailure(
                OutcomeRecord(
                    outcome=Outcome.BUILD_FAILED,
                    reason=f"package {self.spec.package} cannot be found in the image",
                    evidence=(exc.stderr or b"").decode("utf-8", "replace")[-2000:],
                )
            ) from exc
        except APIError as exc:
            raise _infra(f"cannot run a container of {image}: {exc}") from exc
        return out.decode().strip().splitlines()[-1]

    def _package_part(self, diff: str) -> tuple[str, list[str]]:
        """The patch's sections inside the package, and the files it leaves out."""
        prefix = f"{self.spec.package}/"
        sections = split_patch(diff)
        inside = [text for path, text in sections if path.startswith(prefix)]
        outside = sorted({path for path, _ in sections if not path.startswith(prefix)})
        if outside and self.spec.outside_package == "refuse":
            raise StepFailure(
                OutcomeRecord(
                    outcome=Outcome.PATCH_FAILED,
                    reason=f"patch changes files outside the installed {self.spec.package} "
                    f"package ({', '.join(outside)}); the image holds no source for them",
                    evidence="\n".join(outside),
                )
            )
        return "".join(inside), outside

    def _source_tree(self, image: str, scratch: Path, root: str, package: str | None) -> Path:
        """The image's source tree (or its installed package), copied out into a fresh git
        repository whose paths match the patch's."""
        if scratch.exists():
            subprocess.run(["rm", "-rf", str(scratch)], check=True)
        scratch.mkdir(parents=True)
        try:
            holder = self.client.containers.create(image, command=["true"], network_mode="none")
        except APIError as exc:
            raise _infra(f"cannot create a container of {image}: {exc}") from exc
        try:
            stream, _stat = holder.get_archive(f"{root}/{package}" if package else root)
            data = b"".join(stream)
        except NotFound as exc:
            raise StepFailure(
                OutcomeRecord(
                    outcome=Outcome.BUILD_FAILED,
                    reason=f"the image has no {root} to patch",
                    evidence=str(exc),
                )
            ) from exc
        finally:
            holder.remove(force=True)
        # The archive's top folder is the copied one: the package's own name, or the root's.
        tree = scratch / "tree"
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tree if package else scratch, filter="data")
        if not package:
            (scratch / Path(root).name).rename(tree)
        _git(tree, "init", "--quiet")
        _git(tree, "add", "-A")
        _git(tree, "commit", "--quiet", "--allow-empty", "-m", "image source tree")
        return tree

    def _build(
        self,
        base: str,
        tree: Path,
        root: str,
        changed: list[str],
        deleted: list[str],
        tag: str,
        patch_sha: str,
        labels: dict[str, str],
    ) -> str:
        root = root.rstrip("/")
        lines = [f"FROM {base}", f'LABEL isobench.patch="{patch_sha}"']
        lines += [f'LABEL {key}="{value}"' for key, value in labels.items()]
        if changed:
            lines.append(f"COPY files/ {root}/")
        if deleted:
            lines.append("RUN rm -f " + " ".join(f"{root}/{p}" for p in deleted))
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            dockerfile = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
            for rel in changed:
                tar.add(str(tree / rel), arcname=f"files/{rel}")
        context.seek(0)
        log: list[str] = []
        try:
            _image, output = self.client.images.build(
                fileobj=context, custom_context=True, tag=tag, rm=True, network_mode="none"
            )
            log = [chunk.get("stream", "") for chunk in output if isinstance(chunk, dict)]
        except BuildError as exc:
            text = "".join(c.get("stream", "") or c.get("error", "") for c in exc.build_log)
            raise StepFailure.of(
                Outcome.BUILD_FAILED, f"image build failed: {exc.msg}", text, "build"
            ) from exc
        except APIError as exc:
            raise _infra(f"Docker engine error while building: {exc}") from exc
        return "".join(log)

    def _command(self, job: ArmJob, port: int) -> list[str]:
        values = {"python": "python3", "port": str(port), "model": job.task.model or ""}
        return [part.format(**values) for part in self.spec.server_command]

    def run_options(self, job: ArmJob) -> dict[str, object]:
        """GPU pinning and mounts for a container of ``job``."""
        kwargs: dict[str, object] = {}
        gpus = self.spec.device_ids or (job.gpus if self.spec.pin_slot_gpus else None)
        if gpus:
            kwargs["device_requests"] = [
                DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])
            ]
        if self.spec.model_cache:
            kwargs["volumes"] = {
                self.spec.model_cache: {"bind": self.spec.model_cache_target, "mode": "ro"}
            }
        return kwargs

    def run_command(
        self, job: ArmJob, prepared: Prepared, args: list[str], timeout_s: float
    ) -> CommandResult:
        argv = [a.replace("{python}", "python3") for a in args]
        try:
            container = self.client.containers.run(
                prepared.image_ref,
                argv,
                detach=True,
                network_mode="host",
                working_dir=self.spec.source_root,
                shm_size=self.spec.shm_size,
                labels={LABEL_KEY: job.run_label, OWNER_KEY: _owner()},
                **self.run_options(job),
            )
        except APIError as exc:
            raise _infra(f"cannot start a container of {prepared.image_ref}: {exc}") from exc
        try:
            code: int | None = int(container.wait(timeout=timeout_s)["StatusCode"])
        except (ReadTimeout, RequestsConnectionError):
            code = None  # the timeout: killed below
        try:
            output = container.logs().decode("utf-8", "replace")
        finally:
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)
        return CommandResult(exit_code=code, output=output)

    def start_server(self, job: ArmJob, prepared: Prepared, port: int) -> ServerInfo:
        kwargs = self.run_options(job)
        try:
            container = self.client.containers.run(
                prepared.image_ref,
                self._command(job, port),
                detach=True,
                network_mode="host",
                working_dir=self.spec.source_root,
                shm_size=self.spec.shm_size,
                labels={LABEL_KEY: job.run_label, OWNER_KEY: _owner()},
                name=f"isobench-{safe_name(job.name)}-{port}",
                **kwargs,
            )
        except APIError as exc:
            raise _infra(f"cannot start a container of {prepared.image_ref}: {exc}") from exc
        return ServerInfo(url=f"http://127.0.0.1:{port}", handle=container.id)

    def exit_code(self, server: ServerInfo) -> int | None:
        try:
            container = self.client.containers.get(server.handle)
        except NotFound:
            return -1
        if container.status in ("exited", "dead"):
            return int(container.attrs["State"]["ExitCode"])
        return None

    def logs(self, server: ServerInfo) -> str:
        try:
            raw = self.client.containers.get(server.handle).logs(tail=LOG_TAIL_LINES)
        except NotFound:
            return ""
        return raw.decode("utf-8", "replace")

    def stop_server(self, server: ServerInfo) -> None:
        try:
            container = self.client.containers.get(server.handle)
        except NotFound:
            return
        with contextlib.suppress(APIError):  # already stopping or gone: removal settles it
            container.stop(timeout=STOP_GRACE_S)
        with contextlib.suppress(NotFound):
            container.remove(force=True)

    def _remove_where(self, doomed: Callable[[dict[str, str]], bool]) -> list[str]:
        removed: list[str] = []
        for container in self.client.containers.list(all=True, filters={"label": LABEL_KEY}):
            if doomed(container.labels):
                with contextlib.suppress(NotFound):
                    container.remove(force=True)
                removed.append(container.id)
        return removed

    def stop_labelled(self, label: str) -> list[str]:
        return self._remove_where(lambda labels: labels.get(LABEL_KEY) == label)

    def sweep_stale(self) -> list[str]:
        return self._remove_where(lambda labels: not _owner_alive(labels.get(OWNER_KEY, "")))
