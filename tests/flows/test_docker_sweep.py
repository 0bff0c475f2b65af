"""The demo's sweep on the docker runtime, against a real Docker engine: images made offline
(no registry), host networking, the agent image built from the baseline image plus the patch,
and no container left behind."""

from __future__ import annotations

from pathlib import Path

from isobench.demo.repo import EXPECTED
from isobench.demo.run import DEMO_CONFIG, load_demo
from isobench.flows.pipeline import sweep
from isobench.models.domain import Selection, Timeouts
from isobench.runtimes.base import LABEL_KEY
from isobench.runtimes.docker import AGENT_REPOSITORY, DockerRuntimeSpec
from isobench.store import repository
from isobench.store.engine import session_scope
from tests.docker_support import source_image

IMAGE = "isobench-demo:{commit12}"


def test_docker_sweep(prefect_api: str, docker_client, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'docker.db'}"
    demo = load_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    for commit in (demo.task.parent_commit, demo.task.human_commit):
        assert commit is not None
        source_image(docker_client, demo.path, commit, IMAGE.format(commit12=commit[:12]))
    spec = DockerRuntimeSpec(
        image_template=IMAGE,
        source_root="/workspace",
        server_command=["{python}", "server.py", "--port", "{port}"],
        workdir=str(tmp_path / "docker-work"),
        shm_size="64m",
    )
    results = sweep(
        runtime=spec,
        config=DEMO_CONFIG,
        database_url=db,
        selection=Selection(tasks=[demo.task.task_id]),
        timeouts=Timeouts(server_start_s=60, benchmark_s=120),
    )
    outcomes = {r["agent"] or r["arm"]: r["outcome"] for r in results}
    assert outcomes == {"baseline": "success", "human": "success", **EXPECTED}
    tput = {
        r["agent"] or r["arm"]: r["output_throughput"] for r in results if r["output_throughput"]
    }
    assert tput["demo/faster"] > tput["human"] > tput["baseline"]
    assert not docker_client.containers.list(all=True, filters={"label": LABEL_KEY})
    with session_scope(db) as session:
        runs = {
            (r.arm, r.agent.name if r.agent else None): r
            for r in repository.latest_runs(session=session)
        }
    faster = runs[("agent", "demo/faster")]
    baseline = runs[("baseline", None)]
    assert faster.image_ref.startswith(f"{AGENT_REPOSITORY}:")
    assert faster.image_digest.startswith(baseline.image_digest + "+patch:")
    assert baseline.image_digest.startswith("sha256:")
    crash = runs[("agent", "demo/crash")]
    assert crash.cause == "import_error" and "fused_decode_kernels" in crash.evidence
    # A second sweep builds nothing and measures nothing: every arm is reused.
    again = sweep(
        runtime=spec,
        config=DEMO_CONFIG,
        database_url=db,
        selection=Selection(tasks=[demo.task.task_id]),
    )
    assert all(r["reused"] for r in again)
