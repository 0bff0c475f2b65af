"""How much the load generator itself costs, and how far it distorts ITL as concurrency grows.

Runs the simulated server and the load generator as two processes pinned to different cores
(where the machine has two), and prints two tables:

1. capacity: streamed tokens per second the client handles on one core, from its CPU time
   per token while the server streams as fast as it can;
2. distortion: median / p99 ITL measured against the ITL the server was told, with the
   client's own health (event-loop lag, send lag), for concurrency 1 to 512.

Usage: python bench/loadgen_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from isobench.models.domain import BenchmarkConfig
from isobench.tasks.loadgen import Target, run
from isobench.tasks.server_start import free_port

ISOBENCH = str(Path(sys.executable).parent / "isobench")
TOLD_TTFT_MS, TOLD_ITL_MS = 50.0, 20.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Server:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [ISOBENCH, "sim-server", "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) > 1:  # server on the last core, client on the first
            os.sched_setaffinity(self.proc.pid, {cores[-1]})
            os.sched_setaffinity(0, {cores[0]})
        import urllib.request

        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def capacity(quick: bool) -> None:
    print("\n## Client capacity (one core)\n")
    print(
        "| concurrency | output tokens | wall s | client CPU s | server CPU s "
        "| client µs/token | tokens/s per client core |"
    )
    print("|---|---|---|---|---|---|---|")
    for concurrency in (64, 256) if not quick else (64,):
        with Server("--ttft-ms", "1", "--itl-ms", "1") as server:
            config = BenchmarkConfig(
                input_len=16,
                output_len=200,
                request_rate=None,
                num_prompts=concurrency * 2,
                max_concurrency=concurrency,
            )
            cpu0, scpu0, t0 = _client_cpu_s(), _cpu_s(server.proc.pid), time.perf_counter()
            result = run(config, Target(server.url))
            wall = time.perf_counter() - t0
            cpu, scpu = _client_cpu_s() - cpu0, _cpu_s(server.proc.pid) - scpu0
        tokens = result.metrics.total_output_tokens or 0
        per_token_us = cpu / tokens * 1e6
        print(
            f"| {concurrency} | {tokens} | {wall:.2f} | {cpu:.2f} | {scpu:.2f} "
            f"| {per_token_us:.1f} | {1e6 / per_token_us:,.0f} |"
        )


def distortion(quick: bool) -> None:
    print(
        f"\n## ITL distortion (server told TTFT {TOLD_TTFT_MS:.0f} ms, ITL {TOLD_ITL_MS:.0f} ms; "
        "all requests at once, capped at the concurrency)\n"
    )
    print(
        "| concurrency | tokens/s | median TTFT ms | median ITL ms | ITL error | p99 ITL ms "
        "| loop lag p99 ms | client ok |"
    )
    print("|---|---|---|---|---|---|---|---|")
    levels = (1, 8, 64, 512) if quick else (1, 8, 32, 64, 128, 256, 512)
    for concurrency in levels:
        with Server(
            "--ttft-ms", str(TOLD_TTFT_MS), "--itl-ms", str(TOLD_ITL_MS), "--max-num-seqs", "1024"
        ) as server:
            config = BenchmarkConfig(
                input_len=32,
                output_len=50,
                request_rate=None,
                num_prompts=max(2 * concurrency, 16),
                max_concurrency=concurrency,
            )
            result = run(config, Target(server.url))
        m, h = result.metrics, result.health
        error = (m.median_itl_ms - TOLD_ITL_MS) / TOLD_ITL_MS
        print(
            f"| {concurrency} | {m.output_throughput:,.0f} | {m.median_ttft_ms:.2f} "
            f"| {m.median_itl_ms:.2f} | {error:+.1%} | {m.p99_itl_ms:.2f} "
            f"| {h.loop_lag_p99_ms:.2f} | {'yes' if h.ok else 'NO: ' + '; '.join(h.problems)} |"
        )


def accuracy() -> None:
    print("\n## Accuracy (the test suite's set-ups: told TTFT 50 ms, ITL 10 ms)\n")
    print("| set-up | median TTFT ms | error | median ITL ms | error | peak in flight |")
    print("|---|---|---|---|---|---|")
    setups = {
        "concurrency 1": BenchmarkConfig(
            input_len=100, output_len=40, num_prompts=20, request_rate=None, max_concurrency=1
        ),
        "concurrency 64 (Poisson 200/s)": BenchmarkConfig(
            input_len=100, output_len=40, num_prompts=256, request_rate=200.0, max_concurrency=64
        ),
    }
    for name, config in setups.items():
        with Server("--ttft-ms", "50", "--itl-ms", "10") as server:
            result = run(config, Target(server.url))
        ttft, itl = result.metrics.median_ttft_ms, result.metrics.median_itl_ms
        print(
            f"| {name} | {ttft:.2f} | {(ttft - 50) / 50:+.1%} | {itl:.2f} "
            f"| {(itl - 10) / 10:+.1%} | {result.health.peak_in_flight} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer levels")
    args = parser.parse_args()
    print(f"# Load generator overhead ({os.cpu_count()} cores, python {sys.version.split()[0]})")
    accuracy()
    capacity(args.quick)
    distortion(args.quick)


if __name__ == "__main__":
    main()
