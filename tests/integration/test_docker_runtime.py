"""The docker runtime's parts against a real engine: patching an installed package inside a
release-style image, missing images, and finding every container it started."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from docker.errors import ImageNotFound

from isobench.intake.patches import build_patch
from isobench.models.domain import Arm, BenchmarkConfig, Task
from isobench.models.flags import Flag
from isobench.models.outcomes import Outcome
from isobench.runtimes.base import LABEL_KEY, ArmJob
from isobench.runtimes.docker import AGENT_REPOSITORY, OWNER_KEY, DockerRuntime, DockerRuntimeSpec
from isobench.tasks.patch_apply import StepFailure
from isobench.tasks.server_start import free_port
from tests.docker_support import base_image

PKG_IMAGE = "isobench-test/simpkg:1"
SITE = "usr/lib/python3/dist-packages"
TASK = Task(
    task_id="pkg-0001",
    human_commit="1" * 40,
    parent_commit="0" * 40,
    model="m",
)
PATCH = """diff --git a/simpkg/__init__.py b/simpkg/__init__.py
--- a/simpkg/__init__.py
+++ b/simpkg/__init__.py
@@ -1,2 +1,2 @@
 NAME = "simpkg"
-VALUE = 1
+VALUE = 2
diff --git a/setup.py b/setup.py
--- a/setup.py
+++ b/setup.py
@@ -1 +1 @@
-VERSION = "1"
+VERSION = "2"
"""


@pytest.fixture(scope="module")
def pkg_image(docker_client) -> str:
    """A release-style image: the code is an installed package, no checkout."""
    try:
        return docker_client.images.get(PKG_IMAGE).id
    except ImageNotFound:
        pass
    source = b'NAME = "simpkg"\nVALUE = 1\n'
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tar:
        info = tarfile.TarInfo(f"{SITE}/simpkg/__init__.py")
        info.size = len(source)
        tar.addfile(info, io.BytesIO(source))
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (
            ("Dockerfile", f"FROM {base_image(docker_client)}\nADD pkg.tar /\n".encode()),
            ("pkg.tar", inner.getvalue()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, tag=PKG_IMAGE, rm=True)
    return docker_client.images.get(PKG_IMAGE).id


def _job(patch_text: str | None, label: str = "t") -> ArmJob:
    patch = None
    if patch_text is not None:
        patch = build_patch(
            agent="a",
            task_id=TASK.task_id,
            data=patch_text.encode(),
            source_path=None,
            max_bytes=10**6,
        )
    arm = Arm.AGENT if patch else Arm.BASELINE
    config = BenchmarkConfig()
    return ArmJob(
        task=TASK,
        arm=arm,
        agent="a" if patch else None,
        patch=patch,
        config=config,
        run_label=label,
    )


def _spec(tmp_path: Path, **kw: object) -> DockerRuntimeSpec:
    base = {"image_template": PKG_IMAGE, "workdir": str(tmp_path), "shm_size": "16m"}
    return DockerRuntimeSpec.model_validate(base | kw)


def test_installed_package_is_patched_in_place(
    docker_client, pkg_image: str, tmp_path: Path
) -> None:
    short = pkg_image.removeprefix("sha256:")[:12]
    for image in docker_client.images.list(name=AGENT_REPOSITORY):
        for tag in image.tags:
            if tag.split(":", 1)[1].startswith(short):  # built by an earlier run: build anew
                docker_client.images.remove(tag, force=True)
    refuse = DockerRuntime(_spec(tmp_path, package="simpkg"))
    with pytest.raises(StepFailure) as exc:
        refuse.prepare(_job(PATCH))
    assert exc.value.outcome.outcome is Outcome.PATCH_FAILED
    assert "outside the installed simpkg package (setup.py)" in exc.value.outcome.reason

    record = DockerRuntime(_spec(tmp_path, package="simpkg", outside_package="record"))
    prepared = record.prepare(_job(PATCH))
    assert str(Flag.NOT_APPLIED_OUTSIDE_PACKAGE) in prepared.flags
    assert "not applied (outside the package): setup.py" in prepared.logs["patch"]
    assert prepared.image_digest.startswith(f"{pkg_image}+patch:{_job(PATCH).patch.sha256[:16]}")
    # The same patch laid in by another rule is another image, never the cached one.
    other = DockerRuntime(_spec(tmp_path, package="simpkg", outside_package="refuse"))
    assert other.identity(_job(PATCH)) != record.identity(_job(PATCH))
    with pytest.raises(StepFailure):
        other.prepare(_job(PATCH))
    out = docker_client.containers.run(
        prepared.image_ref,
        ["python3", "-c", "import simpkg; print(simpkg.VALUE, simpkg.__file__)"],
        remove=True,
        network_mode="none",
    )
    assert out.decode().split()[0] == "2" and f"/{SITE}/simpkg/" in out.decode()
    again = record.prepare(_job(PATCH))
    assert again.cache_hit and again.flags == prepared.flags and again.apply_method == "git-apply"
    assert "not applied (outside the package): setup.py" in again.logs["patch"]


def test_missing_image_is_infra_error(docker_client, tmp_path: Path) -> None:
    runtime = DockerRuntime(_spec(tmp_path, image_template="isobench-test/absent:{commit12}"))
    job = _job(None)
    assert runtime.identity(job) == "missing:isobench-test/absent:000000000000"
    with pytest.raises(StepFailure) as exc:
        runtime.prepare(job)
    assert exc.value.outcome.outcome is Outcome.INFRA_ERROR
    assert "not found on this host" in exc.value.outcome.reason


def test_containers_are_labelled_stopped_and_swept(
    docker_client, pkg_image: str, tmp_path: Path
) -> None:
    sleeper = ["python3", "-c", "import time; time.sleep(120)"]
    runtime = DockerRuntime(_spec(tmp_path, server_command=sleeper))
    job = _job(None, label="run-a")
    first = runtime.start_server(job, runtime.prepare(job), free_port())
    second = runtime.start_server(
        job.model_copy(update={"run_label": "run-b"}), runtime.prepare(job), free_port()
    )
    container = docker_client.containers.get(first.handle)
    assert container.labels[LABEL_KEY] == "run-a"
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert runtime.exit_code(first) is None
    assert runtime.stop_labelled("run-a") == [first.handle]
    assert runtime.exit_code(first) == -1  # gone
    # run-b's owner is alive (this process): a sweep leaves it alone...
    assert runtime.sweep_stale() == []
    # ...until its owner is dead.
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner = docker_client.containers.get(second.handle).labels[OWNER_KEY]
    host = owner.rpartition(":")[0]
    docker_client.containers.get(second.handle).stop(timeout=0)
    stale = docker_client.containers.get(second.handle)
    docker_client.containers.run(
        stale.image.id,
        sleeper,
        detach=True,
        network_mode="none",
        labels={LABEL_KEY: "run-b", OWNER_KEY: f"{host}:{dead.pid}"},
        name=f"isobench-stale-{dead.pid}",
    )
    swept = runtime.sweep_stale()
    assert len(swept) == 1
    runtime.stop_server(second)
    assert not docker_client.containers.list(all=True, filters={"label": LABEL_KEY})


def test_commands_run_with_the_arms_image_and_are_killed_at_the_timeout(
    docker_client, pkg_image: str, tmp_path: Path
) -> None:
    runtime = DockerRuntime(_spec(tmp_path))
    job = _job(None, label="cmd")
    prepared = runtime.prepare(job)
    done = runtime.run_command(
        job,
        prepared,
        ["{python}", "-c", "import simpkg; print('Avg latency:', simpkg.VALUE, 'seconds')"],
        60,
    )
    assert done.exit_code == 0 and done.output.strip() == "Avg latency: 1 seconds"
    slow = runtime.run_command(job, prepared, ["python3", "-c", "import time; time.sleep(60)"], 2)
    assert slow.exit_code is None
    assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL_KEY}=cmd"})


def test_gpu_pinning_follows_the_slots_or_the_fixed_list(docker_client, tmp_path: Path) -> None:
    job = _job(None).model_copy(update={"gpus": ["0", "3"]})

    def pinned(**kw: object) -> list[str] | None:
        requests = DockerRuntime(_spec(tmp_path, **kw)).run_options(job).get("device_requests")
        return requests[0]["DeviceIDs"] if requests else None

    assert pinned() is None  # a host without GPUs: nothing requested
    assert pinned(pin_slot_gpus=True) == ["0", "3"]
    assert pinned(pin_slot_gpus=True, device_ids=["5"]) == ["5"]
