"""The per-agent summary table and its formats."""

from __future__ import annotations

import csv
import io
import json

from isobench.models.outcomes import Outcome
from isobench.report.summary import NO_AGENT, summarize, to_csv, to_json, to_markdown

ROWS = [
    ("a", "success"),
    ("a", "server_timeout"),
    ("a", "benchmark_timeout"),
    ("a", "no_metrics"),
    ("a", "skipped"),
    ("b", "success"),
    (None, "success"),
]


def test_counts_per_agent() -> None:
    by_name = {s.agent: s for s in summarize(ROWS)}
    a = by_name["a"]
    assert (a.total, a.successful, a.error, a.timeout, a.skipped) == (5, 1, 1, 2, 1)
    assert a.success_rate == 0.25  # skipped runs are not counted against the agent
    assert a.breakdown["no_metrics"] == 1
    assert sum(a.breakdown.values()) == a.total
    assert by_name[NO_AGENT].total == 1


def test_formats_agree() -> None:
    summaries = summarize(ROWS)
    as_json = json.loads(to_json(summaries))
    as_csv = list(csv.DictReader(io.StringIO(to_csv(summaries))))
    assert [r["agent"] for r in as_json] == [r["agent"] for r in as_csv]
    assert {r["agent"]: r["total"] for r in as_json} == {"a": 5, "b": 1, NO_AGENT: 1}
    assert set(as_csv[0]) >= {o.value for o in Outcome}
    md = to_markdown(summaries)
    assert md.splitlines()[0].startswith("| agent | total | successful | error | timeout")
    assert "| a | 5 | 1 | 1 | 2 | 1 | 25.0% |" in md
