"""``isobench deploy`` refuses clearly: no Prefect server named, or none answering."""

from __future__ import annotations

import subprocess
from pathlib import Path

from isobench.tasks.server_start import free_port
from tests.conftest import REPO
from tests.deploy.prefect_processes import ISOBENCH, clean_env


def _deploy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ISOBENCH, "deploy", "--prefect-file", str(REPO / "deploy" / "prefect.yaml")],
        env=clean_env(PREFECT_HOME=str(tmp_path / "prefect"), **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_without_a_server_url_refuses(tmp_path: Path) -> None:
    done = _deploy(tmp_path)
    assert done.returncode == 2
    assert "PREFECT_API_URL is not set" in done.stderr


def test_deploy_to_a_server_that_does_not_answer(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    done = _deploy(tmp_path, PREFECT_API_URL=url)
    assert done.returncode == 2
    assert f"the Prefect server at {url} did not answer" in done.stderr


def test_a_broken_deploy_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "prefect.yaml"
    broken.write_text(
        "deployments:\n  - {name: sweep, entrypoint: isobench.flows.pipeline.sweep}\n"
    )
    done = subprocess.run(
        [ISOBENCH, "deploy", "--prefect-file", str(broken)],
        env=clean_env(
            PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL="http://127.0.0.1:9/api"
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"{broken}: deployment 'sweep': 'work_pool.name' is missing" in done.stderr
