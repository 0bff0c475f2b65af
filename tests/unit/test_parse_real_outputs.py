"""The parser on real vLLM outputs that people published, field by field.

Fixtures: ``tests/fixtures/vllm-outputs/``. ``index.json`` (copied from the project's shared
folder) and ``extra-index.json`` (samples added here) give each file's source, vLLM version
and the expected values, written by hand.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from isobench.tasks.parse import parse_output, parse_results
from tests.conftest import FIXTURES

OUTPUTS = FIXTURES / "vllm-outputs"
SAMPLES = [
    sample
    for index in ("index.json", "extra-index.json")
    for sample in json.loads((OUTPUTS / index).read_text())["samples"]
]


def _flatten(expected: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in expected.items() if k != "percentiles"}
    for pct, value in expected.get("percentiles", {}).items():
        out[f"p{pct}_latency"] = value
    return out


def test_enough_real_samples_from_enough_versions() -> None:
    assert len(SAMPLES) >= 12
    eras = {s["file"].split("-")[1] for s in SAMPLES}
    assert len(eras) >= 4, eras


@pytest.mark.parametrize("sample", SAMPLES, ids=[s["file"][:48] for s in SAMPLES])
def test_real_output_field_by_field(sample: dict[str, Any]) -> None:
    results = parse_results((OUTPUTS / sample["file"]).read_text())
    assert len(results) == len(sample["expected_results"])
    for result, expected in zip(results, sample["expected_results"], strict=True):
        got = {**result.values, **result.context}
        for key, want in _flatten(expected["metrics"]).items():
            if want is None:
                assert got.get(key) is None, key
            elif isinstance(want, str):
                assert got.get(key) == want, key
            else:
                assert key in got, f"{key} missing"
                assert math.isclose(got[key], want, rel_tol=1e-9), (key, got[key], want)


def test_block_and_its_json_are_one_run() -> None:
    text = OUTPUTS / "13-v0.9.0-serving-logs-plus-saveresult-json-goodput-colon-nerdalert.txt"
    parsed = parse_output(text.read_text())
    assert parsed.blocks == 2 and not parsed.notes
    assert parsed.metrics is not None
    assert parsed.metrics.std_ttft_ms == pytest.approx(9.27197373989555)  # only in the JSON


def test_two_runs_in_one_paste_keep_the_last_and_say_so() -> None:
    parsed = parse_output((OUTPUTS / "24-2026-vllm-bench-latency-two-runs-pr53649.txt").read_text())
    assert parsed.notes and parsed.metrics is not None
    assert parsed.metrics.avg_latency == pytest.approx(0.7699367177983125)


def test_shortfall_is_visible() -> None:
    sample = "25-v0.10-serving-1-of-100-successful-issue24005-capture-truncated.txt"
    parsed = parse_output((OUTPUTS / sample).read_text())
    assert parsed.metrics is not None and parsed.metrics.completed == 1
    assert parsed.expected_requests == 100


def test_server_stats_lines_are_not_results() -> None:
    line = "INFO 09-25 13:20:42 metrics.py:351] Avg prompt throughput: 3943.4 tokens/s\n"
    assert parse_results(line * 3) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage \x00\xff",
        "{not json",
        "[1, 2, 3]",
        '{"date": "x"}',
        "Successful requests:\n",
        "============ Serving Benchmark Result ============\nSuccessful requests:",
    ],
)
def test_empty_truncated_and_garbage_inputs(text: str) -> None:
    parsed = parse_output(text)
    assert parsed.metrics is None
    assert parsed.reason.startswith("no 'Serving Benchmark Result' block")


def test_append_result_json_lines() -> None:
    lines = "\n".join(json.dumps({"request_throughput": r, "completed": 10}) for r in (1.0, 2.0))
    results = parse_results(lines)
    assert [r.values["request_throughput"] for r in results] == [1.0, 2.0]


def test_headerless_v0_3_block() -> None:
    text = (
        "Traffic request rate: inf\nSuccessful requests: 1780\n"
        "Benchmark duration: 294.101467 s\nTotal input tokens: 369189\n"
        "Request throughput: 6.05 requests/s\nInput token throughput: 1255.31 tokens/s\n"
        "Mean TTFT: 97.21 ms\nP99 TPOT: 52.80 ms\n\nsomething else: 3\n"
    )
    (result,) = parse_results(text)
    assert result.context == {"request_rate": "inf"}
    assert result.values == {
        "completed": 1780,
        "duration": 294.101467,
        "total_input_tokens": 369189,
        "request_throughput": 6.05,
        "input_throughput": 1255.31,
        "mean_ttft_ms": 97.21,
        "p99_tpot_ms": 52.8,
    }
