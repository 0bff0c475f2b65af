"""Start an arm's server and wait until it answers ``/health`` and ``/v1/models``, watching it
all the while: a server that exits is ``server_crashed`` with the cause its log shows; one that
never answers within the start timeout is ``server_timeout``."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

from isobench.models.outcomes import Outcome, OutcomeRecord
from isobench.runtimes.base import ArmJob, Prepared, Runtime, ServerInfo
from isobench.tasks.classify import server_exit
from isobench.tasks.patch_apply import StepFailure

POLL_S = 0.2
PROBE_TIMEOUT_S = 2.0
TAIL_LINES = 30


def free_port() -> int:
    """A free TCP port on loopback (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as resp:
            return resp.read() if resp.status == 200 else None
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def served_model(url: str) -> str | None:
    """The first model the server lists, once it is ready; None before."""
    if _get(url + "/health") is None:
        return None
    body = _get(url + "/v1/models")
    try:
        return json.loads(body)["data"][0]["id"] if body else None
    except (ValueError, KeyError, IndexError):
        return None


def wait_ready(runtime: Runtime, server: ServerInfo, timeout_s: float) -> str:
    """The served model's name once the server is ready; StepFailure otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        code = runtime.exit_code(server)
        if code is not None:
            log = runtime.logs(server)
            outcome = server_exit(log)
            raise StepFailure(
                outcome.model_copy(update={"reason": f"{outcome.reason} (exit code {code})"}),
                {"server": log},
            )
        model = served_model(server.url)
        if model is not None:
            return model
        if time.monotonic() > deadline:
            log = runtime.logs(server)
            tail = "\n".join(log.splitlines()[-TAIL_LINES:])
            raise StepFailure(
                OutcomeRecord(
                    outcome=Outcome.SERVER_TIMEOUT,
                    reason=f"server not ready after {timeout_s:.0f} s (no answer on /health "
                    "and /v1/models)",
                    evidence=tail,
                ),
                {"server": log},
            )
        time.sleep(POLL_S)


def start_and_wait(
    runtime: Runtime, job: ArmJob, prepared: Prepared, port: int, timeout_s: float
) -> tuple[ServerInfo, str]:
    """Start the server; on any failure it is stopped before the error propagates."""
    server = runtime.start_server(job, prepared, port)
    try:
        return server, wait_ready(runtime, server, timeout_s)
    except BaseException:
        runtime.stop_server(server)
        raise
