"""Read the figures out of a benchmark's output: vLLM's "Serving Benchmark Result" block, its
offline throughput and latency lines, and ``--save-result`` / ``--output-json`` JSON.

Output is found inside longer logs (ANSI colours, carriage-return progress bars, warnings).
Text without a result gives a reason naming what was missing, never an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from isobench.models.metrics import LATENCY_METRICS, Metrics, latency_key

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BLOCK_HEADER = re.compile(r"Serving Benchmark Result", re.IGNORECASE)
_BLOCK_FOOTER = re.compile(r"^\s*={20,}\s*$")
_LABEL_VALUE = re.compile(r"^\s*([A-Za-z][^:]*?)\s*:\s*(-?[\d.]+(?:[eE][-+]?\d+)?)")
_STAT_LABEL = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)\s+(ttft|tpot|itl|e2el)\b", re.I)
_THROUGHPUT = re.compile(
    r"Throughput:\s*([\d.]+)\s*requests/s,\s*([\d.]+)\s*(?:total\s+)?tokens/s"
    r"(?:,\s*([\d.]+)\s*output tokens/s)?"
)
_AVG_LATENCY = re.compile(r"Avg latency:\s*([\d.eE+-]+)\s*seconds")
_PCT_LATENCY = re.compile(r"(\d+)% percentile latency:\s*([\d.eE+-]+)\s*seconds")
_PREFIX_COST = re.compile(r"^cost time\s+([\d.]+)\s*$")

# Block labels (lower case, units stripped) -> metric keys.
_BLOCK_LABELS = {
    "successful requests": "completed",
    "failed requests": "failed",
    "benchmark duration": "duration",
    "total input tokens": "total_input_tokens",
    "total generated tokens": "total_output_tokens",
    "request throughput": "request_throughput",
    "request goodput": "request_goodput",
    "output token throughput": "output_throughput",
    "total token throughput": "total_token_throughput",
    "input token throughput": "input_throughput",
    "peak output token throughput": "max_output_tokens_per_s",
    "peak concurrent requests": "max_concurrent_requests",
}
# JSON keys that older vLLM versions spelled differently.
_JSON_RENAMES = {
    "request_goodput:": "request_goodput",
    "request_inthroughput": "request_throughput",
}


@dataclass(frozen=True)
class ParseResult:
    """Figures found, or why none were. ``blocks`` counts result blocks seen."""

    metrics: Metrics | None
    format: str | None = None
    blocks: int = 0
    reason: str = ""
    notes: list[str] = field(default_factory=list)


def clean_log(text: str) -> list[str]:
    """Lines as a terminal would show them: colours removed, progress-bar rewrites collapsed."""
    lines = []
    for raw in _ANSI.sub("", text).replace("\r\n", "\n").split("\n"):
        lines.append(raw.rsplit("\r", 1)[-1] if "\r" in raw else raw)
    return lines


def _block_key(label: str) -> str | None:
    label = re.sub(r"\s*\([^)]*\)\s*$", "", label.strip()).lower()
    if label in _BLOCK_LABELS:
        return _BLOCK_LABELS[label]
    stat = _STAT_LABEL.match(label)
    if stat:
        return latency_key(stat.group(1).lower(), stat.group(2).lower())
    return None


def _serving_blocks(lines: list[str]) -> list[dict[str, float]]:
    blocks: list[dict[str, float]] = []
    current: dict[str, float] | None = None
    for line in lines:
        if _BLOCK_HEADER.search(line):
            if current:
                blocks.append(current)
            current = {}
            continue
        if current is None:
            continue
        if _BLOCK_FOOTER.match(line):
            blocks.append(current)
            current = None
            continue
        match = _LABEL_VALUE.match(line)
        if match:
            key = _block_key(match.group(1))
            if key:
                current[key] = float(match.group(2))
    if current:
        blocks.append(current)
    return [b for b in blocks if b]


def _merge_blocks(blocks: list[dict[str, float]]) -> tuple[dict[str, float], list[str]]:
    """One set of figures from repeated blocks; a block printed twice (full, then a summary)
    is the same result, while blocks that disagree are separate runs: keep the last."""
    merged: dict[str, float] = {}
    for block in blocks:
        if any(k in merged and merged[k] != v for k, v in block.items()):
            return blocks[-1], [f"{len(blocks)} different result blocks; the last is kept"]
        merged.update(block)
    return merged, []


def _offline(lines: list[str]) -> tuple[dict[str, float], str | None]:
    values: dict[str, float] = {}
    kind = None
    for line in lines:
        if m := _THROUGHPUT.search(line):
            kind = "throughput"
            values = {
                "requests_per_second": float(m.group(1)),
                "tokens_per_second": float(m.group(2)),
            }
            if m.group(3):
                values["output_tokens_per_second"] = float(m.group(3))
        elif m := _AVG_LATENCY.search(line):
            kind = "latency"
            values = {"avg_latency": float(m.group(1))}
        elif (m := _PCT_LATENCY.search(line)) and kind == "latency":
            values[f"p{m.group(1)}_latency"] = float(m.group(2))
        elif m := _PREFIX_COST.match(line.strip()):
            kind = kind or "prefix_caching"
            # The script prints a warm-up time, then the measured one: the last is kept.
            values["prefix_cache_cost_time_s"] = float(m.group(1))
    return values, kind


def _from_json(text: str) -> ParseResult | None:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    flat = {_JSON_RENAMES.get(k, k): v for k, v in data.items()}
    if isinstance(data.get("percentiles"), dict):
        for pct, value in data["percentiles"].items():
            flat[f"p{pct}_latency"] = value
    metrics = Metrics.from_flat(flat)
    if metrics.is_empty():
        return ParseResult(None, reason="JSON holds no known benchmark keys")
    return ParseResult(metrics, format="json", blocks=1)


def parse_output(text: str) -> ParseResult:
    """Find a benchmark result in ``text``."""
    as_json = _from_json(text)
    if as_json is not None and as_json.metrics is not None:
        return as_json
    lines = clean_log(text)
    blocks = _serving_blocks(lines)
    if blocks:
        merged, notes = _merge_blocks(blocks)
        return ParseResult(
            Metrics.from_flat(merged), format="serving", blocks=len(blocks), notes=notes
        )
    values, kind = _offline(lines)
    if values:
        return ParseResult(Metrics.from_flat(values), format=kind, blocks=1)
    tail = [ln for ln in lines if ln.strip()][-5:]
    return ParseResult(
        None,
        reason="no 'Serving Benchmark Result' block, no 'Throughput: ... requests/s' line, "
        "no 'Avg latency: ... seconds' line and no result JSON; last lines: "
        + " | ".join(t.strip()[:200] for t in tail),
    )


__all__ = ["LATENCY_METRICS", "ParseResult", "clean_log", "parse_output"]
