"""Reading results out of benchmark output. (The full format history is issue #3's; these
cover what the importer relies on.)"""

from __future__ import annotations

import json

from isobench.tasks.parse import clean_log, parse_output

BLOCK = """\x1b[32mINFO\x1b[0m starting
\r 10%|#| 1/10\r100%|##########| 10/10 [00:01<00:00]
============ Serving Benchmark Result ============
Successful requests:                     10
Failed requests:                         0
Benchmark duration (s):                  1.50
Total input tokens:                      10000
Total generated tokens:                  1000
Request throughput (req/s):              6.67
Output token throughput (tok/s):         666.67
Total token throughput (tok/s):          7333.33
---------------Time to First Token----------------
Mean TTFT (ms):                          20.10
Median TTFT (ms):                        19.90
P95 TTFT (ms):                           30.00
P99 TTFT (ms):                           35.55
---------------Inter-token Latency----------------
Mean ITL (ms):                           5.01
P99.9 ITL (ms):                          9.99
==================================================
INFO 01-01 Avg prompt throughput: 123.4 tokens/s
"""


def test_serving_block_inside_a_noisy_log() -> None:
    result = parse_output(BLOCK)
    assert result.format == "serving"
    m = result.metrics
    assert m is not None
    assert (m.completed, m.failed, m.duration) == (10, 0, 1.5)
    assert m.total_token_throughput == 7333.33
    assert m.p99_ttft_ms == 35.55 and m.mean_itl_ms == 5.01
    assert m.extras == {"p95_ttft_ms": 30.0, "p99.9_itl_ms": 9.99}


def test_progress_bar_rewrites_collapse_to_the_last() -> None:
    assert clean_log("a\r b\r c\nd") == [" c", "d"]


def test_two_different_blocks_keep_the_last_and_say_so() -> None:
    second = BLOCK.replace("6.67", "7.00")
    result = parse_output(BLOCK + second)
    assert result.blocks == 2 and result.notes
    assert result.metrics is not None and result.metrics.request_throughput == 7.0


def test_throughput_and_latency_lines() -> None:
    tp = parse_output("Throughput: 8.42 requests/s, 9262.13 total tokens/s, 842.01 output tokens/s")
    assert tp.metrics is not None
    assert tp.metrics.flat() == {
        "requests_per_second": 8.42,
        "tokens_per_second": 9262.13,
        "output_tokens_per_second": 842.01,
    }
    lat = parse_output("Avg latency: 1.5 seconds\n50% percentile latency: 1.4 seconds\n")
    assert lat.metrics is not None and lat.metrics.flat() == {
        "avg_latency": 1.5,
        "p50_latency": 1.4,
    }


def test_save_result_json_with_old_key_spellings() -> None:
    data = {
        "request_goodput:": None,
        "request_inthroughput": 3.0,
        "mean_ttft_ms": 9.5,
        "ttfts": [1],
    }
    result = parse_output(json.dumps(data))
    assert result.format == "json"
    assert result.metrics is not None
    assert result.metrics.flat() == {"request_throughput": 3.0, "mean_ttft_ms": 9.5}


def test_truncated_block_keeps_what_it_has() -> None:
    cut = BLOCK.split("Mean TTFT")[0]
    result = parse_output(cut)
    assert result.metrics is not None and result.metrics.mean_ttft_ms is None
    assert result.metrics.completed == 10
