"""A real Prefect server and a real process worker, each its own process group, for the
deployment tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from isobench.tasks.server_start import free_port

PREFECT = str(Path(sys.executable).parent / "prefect")
ISOBENCH = str(Path(sys.executable).parent / "isobench")
SERVER_START_TIMEOUT_S = 120


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Prefect or isobench setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ISOBENCH_"))}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.update(extra)
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def tail(log: Path, size: int = 6000) -> str:
    return log.read_text(errors="replace")[-size:] if log.exists() else "(no log)"


@contextmanager
def prefect_server(database_url: str, home: Path) -> Iterator[str]:
    """``prefect server start`` on ``database_url`` (an async driver URL); yields its API URL."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "server.log"
    env = clean_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url,
        PREFECT_UI_ENABLED="false",
    )
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"the Prefect server exited:\n{tail(log)}"
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the Prefect server never answered:\n{tail(log)}"
            time.sleep(0.5)
        yield api
    finally:
        stop(proc)


@contextmanager
def process_worker(api: str, pool: str, home: Path, isobench_home: Path) -> Iterator[Path]:
    """``prefect worker start --pool POOL`` as the GPU host runs it; yields its log file."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "worker.log"
    env = clean_env(
        PREFECT_API_URL=api,
        PREFECT_HOME=str(home),
        PREFECT_WORKER_QUERY_SECONDS="1",
        ISOBENCH_HOME=str(isobench_home),
    )
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", pool, "--name", "test-gpu-host"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield log
    finally:
        stop(proc)
