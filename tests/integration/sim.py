"""Start the simulated inference server as a real process on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from isobench.tasks.server_start import free_port

ISOBENCH = str(Path(sys.executable).parent / "isobench")


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[str]


def wait_healthy(url: str, deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url + "/health", timeout=0.5) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)
    return False


@contextmanager
def sim_server(*args: str, wait: bool = True) -> Iterator[RunningServer]:
    port = free_port()
    process = subprocess.Popen(
        [ISOBENCH, "sim-server", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = RunningServer(f"http://127.0.0.1:{port}", process)
    try:
        if wait and not wait_healthy(server.url, 15):
            process.kill()
            raise RuntimeError(f"sim-server did not start: {process.communicate()[0]}")
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
