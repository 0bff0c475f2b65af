"""The nightly rerun: baseline and human measured again and compared with their last
measurement of the same image; only agent arms never tried are run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from isobench.demo.repo import SERVER_COMMAND
from isobench.demo.run import DEMO_CONFIG, DEMO_TIMEOUTS, load_demo
from isobench.flows.pipeline import nightly_rerun, sweep
from isobench.models.domain import Arm, Selection
from isobench.runtimes.process import ProcessRuntimeSpec
from isobench.store import repository
from isobench.store.engine import session_scope

CONFIG = DEMO_CONFIG.model_copy(update={"num_prompts": 8})


def _attempts(db: str) -> dict[str, tuple[str, int, int]]:
    """arm or agent -> (outcome, attempt, run id) of the latest attempts."""
    with session_scope(db) as session:
        return {
            (r.agent.name if r.agent else r.arm): (r.outcome, r.attempt, r.id)
            for r in repository.latest_runs(session=session)
        }


def test_nightly_rerun_measures_references_again_and_only_new_agents(
    prefect_api: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'nightly.db'}"
    demo = load_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    spec = ProcessRuntimeSpec(
        repo=str(demo.path), workdir=str(tmp_path / "w" / "runtime"), server_command=SERVER_COMMAND
    )
    where = {"runtime": spec, "database_url": db, "timeouts": DEMO_TIMEOUTS, "config": CONFIG}
    # Last night: the references and one agent (bad-patch's failure is final).
    sweep(selection=Selection(agents=["demo/faster", "demo/bad-patch"]), **where)
    before = _attempts(db)
    assert {k: v[:2] for k, v in before.items()} == {
        "baseline": ("success", 1),
        "human": ("success", 1),
        "demo/faster": ("success", 1),
        "demo/bad-patch": ("patch_failed", 1),
    }

    # Tonight demo/as-fast's patch is among the selected ones and was never tried.
    selection = Selection(agents=["demo/faster", "demo/bad-patch", "demo/as-fast"])
    results = nightly_rerun(selection=selection, drift_threshold=0.5, **where)
    by_arm = {r["agent"] or r["arm"]: r for r in results}
    assert not by_arm["baseline"]["reused"] and not by_arm["human"]["reused"]
    assert by_arm["demo/faster"]["reused"] and by_arm["demo/bad-patch"]["reused"]
    assert not by_arm["demo/as-fast"]["reused"]
    after = _attempts(db)
    assert after["baseline"][:2] == ("success", 2) and after["human"][:2] == ("success", 2)
    assert after["demo/faster"] == before["demo/faster"]
    assert after["demo/as-fast"][:2] == ("success", 1)

    async def drift_rows() -> list[dict]:
        async with get_client() as client:
            key = ArtifactFilterKey(any_=[f"isobench-drift-{CONFIG.config_hash}"])
            [artifact] = await client.read_artifacts(artifact_filter=ArtifactFilter(key=key))
            data = artifact.data
            return data if isinstance(data, list) else json.loads(data)

    rows = asyncio.run(drift_rows())
    assert {(r["arm"], r["figure"]) for r in rows} == {
        (arm, figure)
        for arm in (Arm.BASELINE.value, Arm.HUMAN.value)
        for figure in ("output_throughput", "median_ttft_ms", "median_itl_ms")
    }
    for row in rows:
        assert row["before_run"] == before[row["arm"]][2]
        assert row["now_run"] == after[row["arm"]][2]
        # The same code on the same host: well within the generous threshold given.
        assert abs(row["change"]) < 0.5 and not row["drifted"]
