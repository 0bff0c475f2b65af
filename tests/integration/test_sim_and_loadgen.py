"""The load generator against the simulated server, both real processes talking real HTTP:
the measured TTFT and ITL match what the server was told, and faults show as they should."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.request

import pytest

from isobench.models.domain import BenchmarkConfig, Endpoint
from isobench.models.outcomes import CrashCause, Outcome
from isobench.tasks.classify import server_exit
from isobench.tasks.loadgen import LoadgenError, Target, run, run_load
from tests.integration.sim import ISOBENCH, free_port, sim_server, wait_healthy

TTFT_MS, ITL_MS = 50.0, 10.0


def within(measured: float, told: float) -> bool:
    """The accuracy bound: 5 % of the told value, or 0.5 ms."""
    return abs(measured - told) <= max(0.05 * told, 0.5)


def workload(**kw: object) -> BenchmarkConfig:
    base = {"input_len": 100, "output_len": 40, "num_prompts": 32, "request_rate": None}
    return BenchmarkConfig.model_validate(base | kw)


def test_accuracy_at_concurrency_1() -> None:
    with sim_server("--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)) as server:
        result = run(workload(max_concurrency=1, num_prompts=20), Target(server.url))
    m = result.metrics
    assert (m.completed, m.failed) == (20, 0)
    assert within(m.median_ttft_ms, TTFT_MS), m.median_ttft_ms
    assert within(m.median_itl_ms, ITL_MS), m.median_itl_ms
    assert within(m.median_tpot_ms, ITL_MS), m.median_tpot_ms
    assert result.health.ok, result.health.problems
    assert result.health.peak_in_flight == 1


def test_accuracy_at_concurrency_64() -> None:
    # Poisson arrivals faster than 64 sequences drain keep 64 in flight without a burst of
    # 64 simultaneous new requests (that burst's cost is measured by bench/loadgen_overhead.py).
    config = workload(max_concurrency=64, num_prompts=256, request_rate=200.0)
    with sim_server("--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)) as server:
        result = run(config, Target(server.url))
    m = result.metrics
    assert (m.completed, m.failed) == (256, 0)
    assert result.health.peak_in_flight == 64
    assert within(m.median_ttft_ms, TTFT_MS), m.median_ttft_ms
    assert within(m.median_itl_ms, ITL_MS), m.median_itl_ms
    assert result.health.ok, result.health.problems


def test_usage_counts_chat_and_result_json(tmp_path) -> None:
    with sim_server("--ttft-ms", "5", "--itl-ms", "2") as server:
        result = run(workload(endpoint=Endpoint.CHAT, output_len=17), Target(server.url))
        out = tmp_path / "r.json"
        cli = subprocess.run(
            [
                ISOBENCH,
                "loadgen",
                "--base-url",
                server.url,
                "--preset",
                "legacy",
                "--num-prompts",
                "10",
                "--output-len",
                "8",
                "--save-result",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.metrics.total_output_tokens == 32 * 17
    assert result.metrics.total_input_tokens == 32 * 100
    assert cli.returncode == 0, cli.stderr
    assert "Serving Benchmark Result" in cli.stdout
    saved = json.loads(out.read_text())
    assert saved["completed"] == 10 and saved["total_output_tokens"] == 80
    assert saved["request_rate"] == "inf" and saved["backend"] == "isobench-loadgen"
    assert {"mean_ttft_ms", "median_tpot_ms", "p99_itl_ms", "p99_e2el_ms"} <= saved.keys()
    assert saved["client_health"]["ok"] is True
    parsed = subprocess.run([ISOBENCH, "parse", str(out)], capture_output=True, text=True)
    assert json.loads(parsed.stdout)["metrics"]["completed"] == 10


def test_server_errors_are_counted_and_kept() -> None:
    with sim_server("--ttft-ms", "5", "--itl-ms", "2", "--error-rate", "0.3") as server:
        result = run(workload(num_prompts=40, warmup_requests=0), Target(server.url))
    m = result.metrics
    assert m.failed and m.failed > 0 and m.completed + m.failed == 40
    assert result.errors and result.errors[0].startswith("HTTP 500")


def test_batch_limit_queues_requests() -> None:
    # 4 slots, 8 requests at once: the second four wait for a whole generation of the first.
    args = ("--ttft-ms", "20", "--itl-ms", "10", "--max-num-seqs", "4")
    with sim_server(*args) as server:
        result = run(workload(num_prompts=8, output_len=20, warmup_requests=0), Target(server.url))
    ttfts = sorted(o.ttft * 1000 for o in result.outputs)
    assert all(within(t, 20) or t < 30 for t in ttfts[:4]), ttfts
    waited = 20 + 19 * 10 + 20  # first four: TTFT + 19 steps; then the next one's TTFT
    assert all(abs(t - waited) < 0.1 * waited for t in ttfts[4:]), ttfts


def test_step_grows_with_running_sequences_and_prefill() -> None:
    with sim_server("--ttft-ms", "10", "--itl-ms", "10", "--itl-per-seq-ms", "1") as server:
        batched = run(workload(num_prompts=8, warmup_requests=0), Target(server.url))
    assert within(batched.metrics.median_itl_ms, 10 + 7 * 1), batched.metrics.median_itl_ms
    with sim_server("--ttft-ms", "10", "--prefill-ms-per-token", "0.2") as server:
        prefill = run(workload(num_prompts=5, max_concurrency=1, input_len=200), Target(server.url))
    assert within(prefill.metrics.median_ttft_ms, 10 + 200 * 0.2), prefill.metrics.median_ttft_ms


def test_a_faster_server_shows_in_throughput() -> None:
    speeds = {}
    for itl in ("10", "5"):
        with sim_server("--ttft-ms", "10", "--itl-ms", itl) as server:
            speeds[itl] = run(workload(num_prompts=16), Target(server.url)).metrics
    ratio = speeds["5"].output_throughput / speeds["10"].output_throughput
    assert 1.7 < ratio < 2.1, ratio
    assert speeds["5"].median_e2el_ms < speeds["10"].median_e2el_ms


def test_client_that_cannot_keep_up_is_flagged() -> None:
    with sim_server("--ttft-ms", "5", "--itl-ms", "2") as server:
        # A callback that blocks the event loop: the client, not the server, is slow now.
        result = asyncio.run(
            run_load(
                workload(num_prompts=30, request_rate=100.0),
                Target(server.url),
                lambda _o: time.sleep(0.03),
            )
        )
    assert not result.health.ok
    assert any("event loop lagged" in p for p in result.health.problems)


def test_crash_on_start_is_a_server_crash() -> None:
    proc = subprocess.run(
        [ISOBENCH, "sim-server", "--port", str(free_port()), "--crash-on-start"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "RuntimeError: simulated crash on start" in proc.stderr
    found = server_exit(proc.stdout + proc.stderr)
    assert (found.outcome, found.cause) == (Outcome.SERVER_CRASHED, CrashCause.OTHER)
    assert "RuntimeError: simulated crash on start" in found.evidence


def test_crash_after_requests_and_hang() -> None:
    with sim_server("--ttft-ms", "5", "--itl-ms", "2", "--crash-after-requests", "5") as server:
        result = run(
            workload(num_prompts=12, max_concurrency=1, warmup_requests=0), Target(server.url)
        )
        assert server.process.wait(timeout=10) == 1
    assert result.metrics.completed == 5 and result.metrics.failed == 7
    with sim_server("--hang", wait=False) as server:
        assert not wait_healthy(server.url, 2.0)
        with pytest.raises(OSError):
            urllib.request.urlopen(server.url + "/v1/models", timeout=0.5)


def test_no_server_is_a_clear_error() -> None:
    with pytest.raises(LoadgenError, match="cannot list models"):
        run(workload(num_prompts=1), Target(f"http://127.0.0.1:{free_port()}"))
