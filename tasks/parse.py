"""Read the figures out of a benchmark's output, in every format vLLM's scripts have printed.

Formats (see the format history in the project's shared notes):

* the "Serving Benchmark Result" block of ``benchmark_serving.py`` / ``vllm bench serve``
  (padded or stripped, with or without the TTFT/TPOT/ITL/E2EL sections, goodput, peak
  throughput, failed requests, any ``P{p}`` percentile), its headerless v0.3 form
  (``Request throughput: 6.05 requests/s``) and the v0.1-v0.3 lines (``Total time: 58.91 s
  Throughput: 0.34 requests/s Average latency: ...``, even collapsed onto one line);
* ``--save-result`` / ``--output-json`` JSON, whole, one object per line (``--append-result``)
  or embedded in a log, with old key spellings (``"request_goodput:"``, ``request_inthroughput``);
* ``benchmark_throughput.py`` (``Throughput: X requests/s, Y [total ]tokens/s[, Z output
  tokens/s]``), ``benchmark_latency.py`` (``Avg latency: X seconds``, ``P% percentile
  latency``) and ``benchmark_prefix_caching.py`` (``cost time X``).

Output is found inside longer logs (ANSI colours, carriage-return progress bars, warnings,
server metric lines that look like results but are not). Several results in one text are
all returned. Text without a result gives a reason naming what was missing, never an error.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from isobench.models.metrics import Metrics, latency_key

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BLOCK_HEADER = re.compile(r"Serving Benchmark Result", re.IGNORECASE)
_BLOCK_FOOTER = re.compile(r"^\s*={20,}\s*$")
_LABEL_VALUE = re.compile(r"^\s*([A-Za-z][^:]*?)\s*:\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
_STAT_LABEL = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)\s+(ttft|tpot|itl|e2el)\b", re.I)
_THROUGHPUT = re.compile(
    r"Throughput:\s*([\d.]+)\s*requests/s,\s*([\d.]+)\s*(?:total\s+)?tokens/s"
    r"(?:,\s*([\d.]+)\s*output tokens/s)?"
)
_NUM_TOKENS = re.compile(r"Total num (prompt|output) tokens:\s*(\d+)")
_AVG_LATENCY = re.compile(r"Avg latency:\s*([\d.eE+-]+)\s*seconds")
_PCT_LATENCY = re.compile(r"(\d+(?:\.\d+)?)% percentile latency:\s*([\d.eE+-]+)\s*seconds")
_PREFIX_COST = re.compile(r"^cost time\s+([\d.]+)\s*$")
_LEGACY = re.compile(
    r"(Total time|Throughput|Average latency per output token|Average latency per token"
    r"|Average latency):\s*([\d.]+)\s*(?:s|requests/s)(?![\w/])"
)
_PROGRESS = re.compile(r"(\d+)/(\d+) \[")
_NAMESPACE_ARG = re.compile(r"\b(num_prompts|request_rate|max_concurrency)=([\w.]+)")

# Serving-block labels (lower case, units in parentheses stripped) -> metric keys.
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
_LEGACY_KEYS = {
    "total time": ("duration", 1.0),
    "throughput": ("request_throughput", 1.0),
    "average latency": ("mean_e2el_ms", 1000.0),
    "average latency per token": ("legacy_avg_latency_per_token_s", 1.0),
    "average latency per output token": ("legacy_avg_latency_per_output_token_s", 1.0),
}
# JSON keys that older vLLM versions spelled differently.
_JSON_RENAMES = {
    "request_goodput:": "request_goodput",
    "request_inthroughput": "request_throughput",
}
# Settings of the run, not measurements: kept as context.
CONTEXT_KEYS = (
    "request_rate",
    "burstiness",
    "max_concurrency",
    "num_prompts",
    "date",
    "backend",
    "endpoint_type",
    "label",
    "model_id",
    "tokenizer_id",
)


@dataclass
class BenchResult:
    """One result found in a text: its figures, the settings it states, where it starts."""

    kind: str
    line: int
    values: dict[str, float] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> Metrics:
        return Metrics.from_flat(self.values)

    @property
    def expected_requests(self) -> int | None:
        """How many requests the run meant to send, where the text says so."""
        for key in ("num_prompts", "progress_total"):
            value = self.context.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value)
        return None


@dataclass(frozen=True)
class ParseResult:
    """The result a run produced (duplicates merged), or why none was found."""

    metrics: Metrics | None
    format: str | None = None
    blocks: int = 0
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    expected_requests: int | None = None
    line: int = 0  # where the kept result starts in the cleaned log


def clean_log(text: str) -> list[str]:
    """Lines as a terminal would show them: colours removed, progress-bar rewrites collapsed."""
    lines = []
    for raw in _ANSI.sub("", text).replace("\r\n", "\n").split("\n"):
        lines.append(raw.rsplit("\r", 1)[-1] if "\r" in raw else raw)
    return lines


def _number(text: str) -> float | str | None:
    text = text.strip().rstrip(".,")
    if text.lower() in ("inf", "infinity"):
        return "inf"
    if text in ("None", "null"):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in text else value


def _block_key(label: str) -> str | None:
    label = re.sub(r"\s*\([^)]*\)\s*$", "", label.strip()).lower()
    if label in _BLOCK_LABELS:
        return _BLOCK_LABELS[label]
    stat = _STAT_LABEL.match(label)
    if stat:
        return latency_key(stat.group(1).lower(), stat.group(2).lower())
    return None


def _context_line(line: str) -> dict[str, Any]:
    """Run settings printed around a serving block."""
    text = line.strip()
    for prefix, key in (
        ("Traffic request rate:", "request_rate"),
        ("Request rate configured (RPS):", "request_rate"),
        ("Burstiness factor:", "burstiness"),
        ("Maximum request concurrency:", "max_concurrency"),
    ):
        if text.startswith(prefix):
            word = text[len(prefix) :].split()
            return {key: _number(word[0]) if word else None}
    if text.startswith("Namespace("):
        return {k: _number(v) for k, v in _NAMESPACE_ARG.findall(text)}
    return {}


def _json_result(data: dict[str, Any], line: int) -> BenchResult | None:
    flat = {_JSON_RENAMES.get(k, k): v for k, v in data.items()}
    if isinstance(data.get("percentiles"), dict):
        for pct, value in data["percentiles"].items():
            flat[f"p{pct}_latency"] = value
    context = {k: flat.pop(k) for k in CONTEXT_KEYS if k in flat}
    if context.get("request_rate") in ("inf", float("inf")):
        context["request_rate"] = "inf"
    values = {
        k: float(v)
        for k, v in flat.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    result = BenchResult("json", line, values, context)
    return result if not result.metrics.is_empty() else None


def _embedded_json(lines: list[str], start: int) -> tuple[BenchResult | None, int]:
    """A JSON object starting at ``lines[start]``, and how many lines it spans."""
    rest = "\n".join(lines[start:])
    try:
        data, end = json.JSONDecoder().raw_decode(rest.lstrip())
    except json.JSONDecodeError:
        return None, 1
    if not isinstance(data, dict):
        return None, 1
    consumed = rest.lstrip()[:end].count("\n") + 1
    return _json_result(data, start), consumed


class _Scanner:
    """Walks a log line by line and collects every result in it."""

    def __init__(self) -> None:
        self.results: list[BenchResult] = []
        self.current: BenchResult | None = None
        self.pending: dict[str, Any] = {}  # settings printed before the next result

    def start(self, kind: str, line: int) -> BenchResult:
        self.close()
        self.current = BenchResult(kind, line, context=self.pending)
        self.pending = {}
        return self.current

    def close(self) -> None:
        if self.current is not None and self.current.values:
            self.results.append(self.current)
        self.current = None

    def feed(self, i: int, line: str) -> None:
        cur = self.current
        if progress := _PROGRESS.findall(line):
            self.pending["progress_total"] = int(progress[-1][1])
        if _BLOCK_HEADER.search(line):
            self.start("serving", i)
            return
        if _BLOCK_FOOTER.match(line):
            if cur is not None and cur.kind == "serving":
                self.close()
            return
        context = _context_line(line)
        if context:
            target = cur.context if cur is not None and cur.kind == "serving" else self.pending
            target.update(context)
            return
        if self._offline(i, line):
            return
        legacy = _LEGACY.findall(line)
        if legacy:
            for label, value in legacy:
                key, scale = _LEGACY_KEYS[label.lower()]
                if key == "duration" or cur is None or cur.kind != "serving_legacy":
                    cur = self.start("serving_legacy", i)
                cur.values[key] = float(value) * scale
            return
        match = _LABEL_VALUE.match(line)
        key = _block_key(match.group(1)) if match else None
        if match and key:
            if cur is None or cur.kind not in ("serving", "serving_headerless"):
                if key != "completed":
                    return  # a lone metric-like line (server stats) is not a result
                cur = self.start("serving_headerless", i)
            cur.values[key] = float(match.group(2))
        elif cur is not None and cur.kind == "serving_headerless":
            self.close()  # the unheaded block ends at its first other line

    def _offline(self, i: int, line: str) -> bool:
        if m := _THROUGHPUT.search(line):
            result = self.start("throughput", i)
            result.values = {
                "requests_per_second": float(m.group(1)),
                "tokens_per_second": float(m.group(2)),
            }
            if m.group(3):
                result.values["output_tokens_per_second"] = float(m.group(3))
            return True
        if (m := _NUM_TOKENS.search(line)) and self.current and self.current.kind == "throughput":
            key = "total_input_tokens" if m.group(1) == "prompt" else "total_output_tokens"
            self.current.values[key] = float(m.group(2))
            return True
        if m := _AVG_LATENCY.search(line):
            self.start("latency", i).values["avg_latency"] = float(m.group(1))
            return True
        if (m := _PCT_LATENCY.search(line)) and self.current and self.current.kind == "latency":
            pct = m.group(1).removesuffix(".0")
            self.current.values[f"p{pct}_latency"] = float(m.group(2))
            return True
        if m := _PREFIX_COST.match(line.strip()):
            # The script prints a warm-up time, then the measured one: one result, the last.
            cur = self.current
            if cur is None or cur.kind != "prefix_caching":
                cur = self.start("prefix_caching", i)
            cur.values["prefix_cache_cost_time_s"] = float(m.group(1))
            return True
        return False


def parse_results(text: str) -> list[BenchResult]:
    """Every benchmark result in ``text``, in order."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            whole = None
        items = whole if isinstance(whole, list) else [whole] if whole is not None else None
        if items is not None:
            found = [_json_result(d, 0) for d in items if isinstance(d, dict)]
            return [r for r in found if r is not None]
    lines = clean_log(text)
    scanner = _Scanner()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("{"):
            result, span = _embedded_json(lines, i)
            if result is not None:
                scanner.close()
                result.context = {**scanner.pending, **result.context}
                scanner.pending = {}
                scanner.results.append(result)
                i += span
                continue
        scanner.feed(i, line)
        i += 1
    scanner.close()
    return scanner.results


def _agree(a: float, b: float) -> bool:
    # A block prints values rounded to 2 decimals; the JSON of the same run holds them raw.
    return abs(a - b) <= max(0.0051, 1e-6 * max(abs(a), abs(b)))


def _same_run(results: list[BenchResult]) -> bool:
    for x, y in itertools.pairwise(results):
        common = x.values.keys() & y.values.keys()
        if not common or not all(_agree(x.values[k], y.values[k]) for k in common):
            return False
    return True


def parse_output(text: str) -> ParseResult:
    """The result of one run: duplicates of one result (a block printed twice, a block and its
    JSON) are merged; different results keep the last and say so."""
    results = parse_results(text)
    if not results:
        tail = [ln.strip()[:200] for ln in clean_log(text) if ln.strip()][-5:]
        return ParseResult(
            None,
            reason="no 'Serving Benchmark Result' block, no 'Throughput: ... requests/s' line, "
            "no 'Avg latency: ... seconds' line and no result JSON; last lines: "
            + (" | ".join(tail) if tail else "(empty output)"),
        )
    notes: list[str] = []
    if _same_run(results):
        values: dict[str, float] = {}
        context: dict[str, Any] = {}
        for r in results:
            values.update(r.values)
            context.update(r.context)
        chosen = BenchResult(results[-1].kind, results[0].line, values, context)
    else:
        chosen = results[-1]
        notes.append(f"{len(results)} different results in the output; the last is kept")
    return ParseResult(
        chosen.metrics,
        format=chosen.kind,
        blocks=len(results),
        notes=notes,
        expected_requests=chosen.expected_requests,
        line=chosen.line,
    )
