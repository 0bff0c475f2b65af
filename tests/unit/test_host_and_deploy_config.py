"""The worker host's settings, the deploy file's checks, the deployments' pull step, and the
drift rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from isobench.flows.deployments import (
    DeployError,
    deployment_names,
    enter_home,
    pool_names,
    read_prefect_file,
)
from isobench.models.tables import MetricsRow, RunRow
from isobench.report.drift import drift
from isobench.runtimes.docker import DockerRuntimeSpec
from isobench.runtimes.host import HostSettings, host_gpus, host_runtime
from isobench.runtimes.process import ProcessRuntimeSpec
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def _no_host_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("ISOBENCH_RUNTIME", "ISOBENCH_GPUS", "ISOBENCH_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's


def test_gpus_as_a_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOBENCH_GPUS", "0, 1,3")
    assert HostSettings().gpus == ["0", "1", "3"]
    monkeypatch.setenv("ISOBENCH_GPUS", '["2", 5]')
    assert host_gpus() == ["2", "5"]
    assert host_gpus(["7"]) == ["7"]


def test_runtime_from_json_from_nested_variables_and_from_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ISOBENCH_RUNTIME", '{"kind": "process", "repo": "/r", "workdir": "/w"}')
    runtime = host_runtime()
    assert isinstance(runtime, ProcessRuntimeSpec) and runtime.repo == "/r"
    monkeypatch.delenv("ISOBENCH_RUNTIME")
    monkeypatch.setenv("ISOBENCH_RUNTIME__KIND", "docker")
    monkeypatch.setenv("ISOBENCH_RUNTIME__IMAGE_TEMPLATE", "vllm:{commit12}")
    monkeypatch.setenv("ISOBENCH_RUNTIME__WORKDIR", "/srv/work")
    monkeypatch.setenv("ISOBENCH_RUNTIME__PIN_SLOT_GPUS", "true")
    runtime = host_runtime()
    assert isinstance(runtime, DockerRuntimeSpec) and runtime.pin_slot_gpus
    for key in ("KIND", "IMAGE_TEMPLATE", "WORKDIR", "PIN_SLOT_GPUS"):
        monkeypatch.delenv(f"ISOBENCH_RUNTIME__{key}")
    (tmp_path / ".env").write_text(
        'ISOBENCH_RUNTIME={"kind": "process", "repo": "/dot", "workdir": "/w"}\n'
    )
    assert host_runtime().repo == "/dot"  # type: ignore[union-attr]


def test_no_runtime_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="ISOBENCH_RUNTIME"):
        host_runtime()


def test_the_deploy_file_names_one_gpu_pool_and_three_deployments() -> None:
    config = read_prefect_file(REPO / "deploy" / "prefect.yaml")
    assert pool_names(config) == ["gpu-h100"]
    assert deployment_names(config) == ["sweep", "three-way", "retry-failed", "nightly-rerun"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "no 'deployments' list"),
        ("deployments:\n  - name: a\n", "deployments\\[0\\]: 'entrypoint' is missing"),
        ("deployments:\n  - {name: a, entrypoint: m.f}\n", "'a': 'work_pool.name' is missing"),
        ("deployments: [\n", "cannot read"),
    ],
)
def test_a_bad_deploy_file_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text(text)
    with pytest.raises(DeployError, match=message):
        read_prefect_file(path)


def test_every_deployment_pulls_into_the_host_home() -> None:
    config = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
    assert config["pull"] == [{"isobench.flows.deployments.enter_home": {}}]


def test_enter_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="ISOBENCH_HOME is not set"):
        enter_home()
    monkeypatch.setenv("ISOBENCH_HOME", str(tmp_path / "missing"))
    with pytest.raises(DeployError, match="is not a folder"):
        enter_home()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ISOBENCH_HOME", str(home))
    assert enter_home() == {"directory": str(home)}
    assert Path.cwd() == home


def _run(run_id: int, throughput: float, itl: float, cv: float | None = None) -> RunRow:
    extras = {"output_throughput_cv": cv} if cv is not None else {}
    return RunRow(
        id=run_id,
        task_id="t1",
        arm="baseline",
        metrics=MetricsRow(output_throughput=throughput, median_itl_ms=itl, extras=extras),
    )


def test_drift_beyond_threshold_and_noise() -> None:
    lines = {line.figure: line for line in drift(_run(1, 1000, 10), _run(2, 900, 10.2), 0.05)}
    assert set(lines) == {"output_throughput", "median_itl_ms"}  # no TTFT in either run
    tput = lines["output_throughput"]
    assert tput.drifted and tput.worse and round(tput.change, 3) == -0.1
    assert (tput.before_run, tput.now_run) == (1, 2)
    assert "-10.0%, worse" in tput.describe()
    itl = lines["median_itl_ms"]
    assert not itl.drifted and itl.worse  # +2% ITL: worse, within the threshold


def test_a_change_within_the_repeats_noise_is_not_drift() -> None:
    [tput, _itl] = drift(_run(1, 1000, 10, cv=0.08), _run(2, 880, 10, cv=0.02), 0.05)
    assert tput.noise == 0.08 and not tput.drifted  # 12% < 2 x 8%
    [tput, _itl] = drift(_run(1, 1000, 10, cv=0.01), _run(2, 1100, 10), 0.05)
    assert tput.drifted and not tput.worse
