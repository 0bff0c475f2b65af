"""The installed ``isobench`` command, run as a user runs it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, FIXTURES

ISOBENCH = str(Path(sys.executable).parent / "isobench")


def run(url: str, *args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISOBENCH_")}
    proc = subprocess.run(
        [ISOBENCH, "--database-url", url, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow
def test_end_to_end(empty_db_url: str, tmp_path: Path) -> None:
    url = empty_db_url
    refused = run(url, "report", cwd=tmp_path, ok=False)
    assert refused.returncode == 3 and "isobench db upgrade" in refused.stderr
    assert "revision 0001" in run(url, "db", "upgrade", cwd=tmp_path).stdout
    loaded = run(
        url, "tasks", "load", str(FIXTURES / "datasets" / "vllm-perf-commits.jsonl"), cwd=tmp_path
    )
    assert "96 tasks" in loaded.stdout and "14 cannot run as given" in loaded.stdout
    assert "3127e975: no parent commit" in loaded.stdout
    patches = run(
        url, "patches", "load", str(EXAMPLES / "patches"), "--agent", "example-agent", cwd=tmp_path
    )
    assert "4 patches: 4 new" in patches.stdout and "30172b49: empty" in patches.stdout
    results = tmp_path / "results"
    shutil.copytree(EXAMPLES / "results", results)
    first = run(url, "import-results", str(results), "--agent", "example-agent", cwd=tmp_path)
    assert "16 imported, 0 already imported" in first.stdout
    again = run(url, "import-results", str(results), "--agent", "example-agent", cwd=tmp_path)
    assert "0 imported, 16 already imported" in again.stdout
    report = json.loads(run(url, "report", "--format", "json", cwd=tmp_path).stdout)
    by_agent = {r["agent"]: r for r in report}
    assert by_agent["example-agent"]["total"] == 6
    assert by_agent["example-agent"]["server_crashed"] == 2
    assert by_agent["(reference arms)"]["total"] == 10
    assert sum(r["total"] for r in report) == 16
    md = run(url, "report", "--format", "markdown", cwd=tmp_path).stdout
    assert md.startswith("| agent | total |")
    csv_out = run(url, "report", "--format", "csv", cwd=tmp_path).stdout
    assert csv_out.splitlines()[0].startswith("agent,total,successful,error,timeout")
    crashed = run(url, "runs", "--outcome", "server_crashed", cwd=tmp_path).stdout
    assert "cuda_oom" in crashed and "syntax_error" in crashed and "015069b0" not in crashed
    out = tmp_path / "export"
    assert (
        "6 result files"
        in run(url, "export-results", str(out), "--agent", "example-agent", cwd=tmp_path).stdout
    )
    assert len(list(out.glob("*_agent_result.json"))) == 6


def test_bad_input_exits_2_and_names_the_row(sqlite_url: str, tmp_path: Path) -> None:
    run(sqlite_url, "db", "upgrade", cwd=tmp_path)
    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"task_id": "a"}\n{oops\n')
    proc = run(sqlite_url, "tasks", "load", str(bad), cwd=tmp_path, ok=False)
    assert proc.returncode == 2
    assert "Nothing was written" in proc.stderr
    assert f"{bad}, row 1, field 'human_commit': Field required" in proc.stderr
    assert f"{bad}, row 2: malformed JSON" in proc.stderr


def test_example_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISOBENCH_")}
    proc = subprocess.run(
        [ISOBENCH, "example"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "isobench.db").is_file()  # SQLite in the working directory
    assert "16 result files: 16 imported" in proc.stdout
    assert "Results per agent" in proc.stdout
    again = subprocess.run(
        [ISOBENCH, "example"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert "0 imported, 16 already imported" in again.stdout
