"""The load generator's arithmetic: vLLM's metric definitions, arrivals, prompts, the block."""

from __future__ import annotations

import itertools
import random
import statistics
from pathlib import Path

import pytest

from isobench.models.domain import WORKLOAD_PRESETS, BenchmarkConfig
from isobench.tasks.loadgen import Prompts, arrival_times, prompt_lengths
from isobench.tasks.loadgen_stats import RequestOutput, compute_metrics, format_block, percentile
from isobench.tasks.parse import parse_output


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 99, 3.97),  # numpy.percentile([1,2,3,4], 99)
        ([5.0], 90, 5.0),
        ([], 99, 0.0),
        ([10.0, 0.0, 20.0], 25, 5.0),
    ],
)
def test_percentile_interpolates_like_numpy(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == pytest.approx(expected)


def test_metrics_follow_vllm_definitions() -> None:
    ok1 = RequestOutput(
        prompt_len=100, success=True, output_tokens=11, ttft=0.1, latency=1.1, itl=[0.1] * 10
    )
    ok2 = RequestOutput(prompt_len=50, success=True, output_tokens=1, ttft=0.3, latency=0.3)
    bad = RequestOutput(prompt_len=70, error="HTTP 500")
    m = compute_metrics([ok1, ok2, bad], duration=2.0, percentiles=(50.0, 95.0))
    assert (m.completed, m.failed) == (2, 1)
    assert (m.total_input_tokens, m.total_output_tokens) == (150, 12)  # failed ones excluded
    assert m.request_throughput == 1.0 and m.output_throughput == 6.0
    assert m.total_token_throughput == 81.0
    assert m.mean_ttft_ms == pytest.approx(200.0)
    assert m.std_ttft_ms == pytest.approx(100.0)  # population std
    # TPOT only for outputs of more than one token: (1.1 - 0.1) / (11 - 1).
    assert m.mean_tpot_ms == pytest.approx(100.0) and m.p99_tpot_ms == pytest.approx(100.0)
    assert m.median_itl_ms == pytest.approx(100.0)
    assert m.mean_e2el_ms == pytest.approx(700.0)
    assert m.extras["p95_ttft_ms"] == pytest.approx(290.0)
    assert m.extras["p50_e2el_ms"] == pytest.approx(700.0)


def test_all_failed_gives_zeros_not_errors() -> None:
    m = compute_metrics([RequestOutput(prompt_len=1, error="x")], 1.0, (99.0,))
    assert (m.completed, m.failed, m.mean_ttft_ms, m.p99_itl_ms) == (0, 1, 0.0, 0.0)


def test_block_reads_back_through_the_parser() -> None:
    outs = [
        RequestOutput(
            prompt_len=10,
            success=True,
            output_tokens=5,
            ttft=0.05 + i / 1000,
            latency=0.1 + i / 100,
            itl=[0.01, 0.012, 0.011, 0.013],
        )
        for i in range(10)
    ]
    m = compute_metrics(outs, 1.5, (50.0, 90.0, 99.9))
    block = format_block(m, (50.0, 90.0, 99.9))
    parsed = parse_output("log noise\n" + block + "\nmore noise")
    assert parsed.metrics is not None
    mine, back = m.flat(), parsed.metrics.flat()
    assert set(back) == {k for k in mine if not k.startswith("std_")}  # std is JSON-only
    for key, value in back.items():
        assert value == pytest.approx(mine[key], abs=0.006), key


def test_arrivals() -> None:
    assert arrival_times(5, None, 1.0, random.Random(0)) == [0.0] * 5
    times = arrival_times(20000, 10.0, 1.0, random.Random(1))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0.0
    assert statistics.fmean(gaps) == pytest.approx(0.1, rel=0.03)
    # Poisson: the coefficient of variation of the gaps is 1; burstiness 0.5 doubles CV^2.
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, rel=0.05)
    bursty = arrival_times(20000, 10.0, 0.5, random.Random(1))
    bgaps = [b - a for a, b in itertools.pairwise(bursty)]
    assert statistics.fmean(bgaps) == pytest.approx(0.1, rel=0.05)
    assert (statistics.pstdev(bgaps) / statistics.fmean(bgaps)) ** 2 == pytest.approx(2.0, rel=0.1)


def test_same_seed_same_workload() -> None:
    cfg = BenchmarkConfig(input_len=100, input_range_ratio=0.2, num_prompts=50)
    assert prompt_lengths(cfg, random.Random(3)) == prompt_lengths(cfg, random.Random(3))
    lengths = prompt_lengths(cfg, random.Random(3))
    assert min(lengths) >= 80 and max(lengths) <= 120 and len(set(lengths)) > 5
    fixed = prompt_lengths(BenchmarkConfig(input_len=100, num_prompts=5), random.Random(0))
    assert fixed == [100] * 5


def test_presets() -> None:
    rec = WORKLOAD_PRESETS["recommended"]
    assert (rec.request_rate, rec.num_prompts, rec.input_len, rec.output_len, rec.ignore_eos) == (
        1.0,
        100,
        1000,
        100,
        True,
    )
    legacy = WORKLOAD_PRESETS["legacy"]
    assert (legacy.request_rate, legacy.num_prompts, legacy.input_len, legacy.output_len) == (
        None,
        100,
        200,
        64,
    )
    assert rec.config_hash != legacy.config_hash


def test_word_prompts_have_the_asked_length() -> None:
    text, n = Prompts(random.Random(0), None).make(37)
    assert n == 37 and len(text.split()) == 37


def test_prompts_from_a_local_tokenizer(tmp_path: Path) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {f"t{i}": i for i in range(50)} | {"[UNK]": 50}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    prompts = Prompts(random.Random(0), str(path))
    text, n = prompts.make(25)
    assert n == 25 and prompts.count(text) == 25
    assert all(word.startswith("t") or word == "[UNK]" for word in text.split())
