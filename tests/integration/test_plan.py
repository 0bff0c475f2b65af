"""Planning a sweep: which arms run, which are reused, and selections that name nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobench.demo.repo import SERVER_COMMAND
from isobench.demo.run import DEMO_CONFIG, load_demo
from isobench.flows.pipeline import NIGHTLY_REUSE, Reuse, plan_jobs
from isobench.models.domain import Arm, Selection
from isobench.runtimes.process import ProcessRuntimeSpec


def _plan(tmp_path: Path, selection: Selection, reuse: dict[Arm, Reuse] | None = None):
    db = f"sqlite:///{tmp_path / 'plan.db'}"
    demo = load_demo(tmp_path / "w", db, max_patch_bytes=10**6)
    spec = ProcessRuntimeSpec(
        repo=str(demo.path), workdir=str(tmp_path / "runtime"), server_command=SERVER_COMMAND
    )
    return plan_jobs(
        db_url=db,
        selection=selection,
        config=DEMO_CONFIG,
        spec=spec,
        gpus=["0"],
        label="test",
        reuse=reuse,
    )


def test_arms_and_agents_select_what_is_planned(tmp_path: Path) -> None:
    plan = _plan(tmp_path, Selection(agents=["demo/faster"], arms=[Arm.HUMAN, Arm.AGENT]))
    assert [(j.arm, j.agent) for j in plan.run] == [
        (Arm.HUMAN, None),
        (Arm.AGENT, "demo/faster"),
    ]
    assert all(j.digest.startswith("git:") for j in plan.run)
    everything = _plan(tmp_path, Selection(), NIGHTLY_REUSE)
    assert len(everything.run) == 7 and not everything.reused  # nothing was measured yet


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection(tasks=["no-such-task"]), "unknown task\\(s\\): no-such-task"),
        (Selection(agents=["demo/faster", "nobody"]), "no patches loaded for agent\\(s\\): nobody"),
    ],
)
def test_a_selection_naming_nothing_known_is_an_error(
    tmp_path: Path, selection: Selection, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _plan(tmp_path, selection)
