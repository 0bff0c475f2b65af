"""Under CI=true a test that needs PostgreSQL fails when it is missing; it never skips."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

TARGET = "tests/integration/test_migrations.py::test_autogenerate_finds_no_difference[postgres]"


def _run_without_postgres(ci: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CI": ci,
        # Port 1 on loopback: nothing listens there, so the connection is refused at once.
        "ISOBENCH_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:1/postgres",
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TARGET],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("ci", "rc", "word"), [("true", 1, "1 failed"), ("", 0, "1 skipped")])
def test_missing_postgres(ci: str, rc: int, word: str) -> None:
    proc = _run_without_postgres(ci)
    assert proc.returncode == rc, proc.stdout
    assert word in proc.stdout
    if ci:
        assert "PostgreSQL is not reachable at postgresql://postgres@127.0.0.1:1" in proc.stdout
