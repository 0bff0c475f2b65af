"""The process runtime: check the commit out of a git repository into a work directory, apply
the patch with the same patch-apply as everywhere, and run the server as a subprocess in its
own process group. No Docker, no GPU needed: the embedded default."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.runtimes.base import (
    ArmJob,
    CommandResult,
    Prepared,
    Runtime,
    ServerInfo,
    safe_name,
)
from isobench.tasks.patch_apply import StepFailure, apply_patch

READY_MARK = ".isobench-prepared.json"
STOP_GRACE_S = 10.0
LOG_READ_BYTES = 256 * 1024
# Servers this process started, shared by every runtime object in it (each Prefect task builds
# its own), so their exit codes can be read and their zombies reaped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
DEFAULT_COMMAND = ["vllm", "serve", "{model}", "--host", "127.0.0.1", "--port", "{port}"]


class ProcessRuntimeSpec(BaseModel):
    kind: Literal["process"] = "process"
    repo: str = Field(description="A git repository holding the tasks' commits.")
    workdir: str = Field(description="Where checkouts, server logs and pid files go.")
    server_command: list[str] = Field(
        default_factory=lambda: list(DEFAULT_COMMAND),
        description="Run in the checkout; {python}, {port} and {model} are filled in.",
    )
    max_patch_bytes: int = 5 * 1024 * 1024


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def _env(job: ArmJob) -> dict[str, str]:
    env = {**os.environ, "ISOBENCH_RUN_LABEL": job.run_label, "PYTHONUNBUFFERED": "1"}
    if job.gpus:  # the GPUs whose slots the arm holds, and no other
        env["CUDA_VISIBLE_DEVICES"] = ",".join(job.gpus)
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessRuntime(Runtime):
    name = "process"

    def __init__(self, spec: ProcessRuntimeSpec) -> None:
        self.spec = spec
        self.workdir = Path(spec.workdir)
        self.servers = self.workdir / "servers"

    def identity(self, job: ArmJob) -> str:
        digest = f"git:{job.commit}"
        if job.patch is not None:
            digest += f"+patch:{job.patch.sha256[:16]}"
        return digest

    def _tree(self, job: ArmJob) -> Path:
        name = f"{job.task.task_id}-{job.commit[:12]}"
        if job.patch is not None:
            name += f"-{job.patch.sha256[:12]}"
        return self.workdir / "trees" / safe_name(name)

    def prepare(self, job: ArmJob) -> Prepared:
        tree = self._tree(job)
        mark = tree / READY_MARK
        if mark.is_file():
            return Prepared.model_validate_json(mark.read_text()).model_copy(
                update={"cache_hit": True}
            )
        if tree.exists():  # a half-made tree from an interrupted run
            subprocess.run(["rm", "-rf", str(tree)], check=True)
        tree.parent.mkdir(parents=True, exist_ok=True)
        clone = _git(["clone", "--quiet", "--shared", "--no-checkout", self.spec.repo, str(tree)])
        checkout = (
            clone
            if clone.returncode
            else _git(["checkout", "--quiet", "--detach", job.commit], tree)
        )
        if checkout.returncode:
            text = (checkout.stdout + checkout.stderr).strip()
            last = text.splitlines()[-1] if text else "git gave no message"
            raise StepFailure.of(
                Outcome.BUILD_FAILED, f"cannot check out {job.commit[:12]}: {last}", text, "build"
            )
        applied = None
        if job.patch is not None:
            data = (job.patch.diff or "").encode()
            applied = apply_patch(tree, data, max_bytes=self.spec.max_patch_bytes)
        prepared = Prepared(
            image_ref=str(tree),
            image_digest=self.identity(job),
            apply_method=applied.method if applied else None,
            flags=applied.flags if applied else [],
            logs={"patch": applied.log} if applied and applied.log else {},
        )
        mark.write_text(prepared.model_dump_json())
        return prepared

    def run_command(
        self, job: ArmJob, prepared: Prepared, args: list[str], timeout_s: float
    ) -> CommandResult:
        argv = [a.replace("{python}", sys.executable) for a in args]
        proc = subprocess.Popen(
            argv,
            cwd=prepared.image_ref,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_env(job),
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
            return CommandResult(exit_code=proc.returncode, output=out.decode("utf-8", "replace"))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return CommandResult(exit_code=None, output=out.decode("utf-8", "replace"))

    def _command(self, job: ArmJob, port: int) -> list[str]:
        values = {"python": sys.executable, "port": str(port), "model": job.task.model or ""}
        return [part.format(**values) for part in self.spec.server_command]

    def start_server(self, job: ArmJob, prepared: Prepared, port: int) -> ServerInfo:
        self.servers.mkdir(parents=True, exist_ok=True)
        log_path = self.servers / f"{safe_name(job.name)}-{port}.log"
        log = log_path.open("wb")
        try:
            proc = subprocess.Popen(
                self._command(job, port),
                cwd=prepared.image_ref,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(job),
                start_new_session=True,  # its own process group: stop kills all it started
            )
        except OSError as exc:
            raise StepFailure(
                OutcomeRecord(
                    outcome=Outcome.SERVER_CRASHED,
                    cause="other",
                    reason=f"cannot start the server: {exc}",
                    evidence=str(exc),
                )
            ) from exc
        finally:
            log.close()
        _CHILDREN[proc.pid] = proc
        record = {"pgid": proc.pid, "label": job.run_label, "owner": os.getpid()}
        (self.servers / f"{proc.pid}.json").write_text(json.dumps(record))
        return ServerInfo(
            url=f"http://127.0.0.1:{port}", handle=str(proc.pid), log_path=str(log_path)
        )

    def exit_code(self, server: ServerInfo) -> int | None:
        pid = int(server.handle)
        child = _CHILDREN.get(pid)
        if child is not None:
            return child.poll()
        return None if _alive(pid) else -1

    def logs(self, server: ServerInfo) -> str:
        if not server.log_path or not Path(server.log_path).exists():
            return ""
        with open(server.log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - LOG_READ_BYTES))
            return fh.read().decode("utf-8", "replace")

    def _kill_group(self, pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_GRACE_S
        child = _CHILDREN.get(pgid)
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                break
            if child is None and not _alive(pgid):
                break
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # whatever is left of the group
        if child is not None:
            child.wait(timeout=STOP_GRACE_S)

    def stop_server(self, server: ServerInfo) -> None:
        pgid = int(server.handle)
        self._kill_group(pgid)
        _CHILDREN.pop(pgid, None)
        (self.servers / f"{pgid}.json").unlink(missing_ok=True)

    def _stop_where(self, doomed: Callable[[dict[str, Any]], bool]) -> list[str]:
        stopped: list[str] = []
        if not self.servers.is_dir():
            return stopped
        for record_path in self.servers.glob("*.json"):
            record = json.loads(record_path.read_text())
            if not doomed(record):
                continue
            self._kill_group(record["pgid"])
            _CHILDREN.pop(record["pgid"], None)
            record_path.unlink(missing_ok=True)
            stopped.append(str(record["pgid"]))
        return stopped

    def stop_labelled(self, label: str) -> list[str]:
        return self._stop_where(lambda record: record["label"] == label)

    def sweep_stale(self) -> list[str]:
        return self._stop_where(lambda record: not _alive(record["owner"]))
