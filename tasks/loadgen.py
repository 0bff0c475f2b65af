"""isobench's load generator for OpenAI-compatible servers (vLLM's ``/v1/completions`` and
``/v1/chat/completions``, streamed as server-sent events).

Random prompts of a fixed or ranged length, Poisson or gamma arrivals (or all at once), an
optional concurrency cap, warm-up requests left out of the figures. It watches itself while
it runs: how late requests went out against their schedule, how far the event loop lagged,
whether the connection pool was as large as the concurrency. A run where the client could
not keep up is flagged: its figures describe the client, not the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import BaseModel

from isobench.models.domain import BenchmarkConfig, Endpoint
from isobench.models.metrics import Metrics
from isobench.tasks.loadgen_stats import (
    RequestOutput,
    compute_metrics,
    format_block,
    percentile,
    save_result,
)

CLIENT_NAME = "isobench-loadgen"
MAX_ERRORS_KEPT = 10
LOOP_PROBE_S = 0.005
# Past these the client, not the server, shaped the figures.
MAX_LOOP_LAG_P99_MS = 5.0
MAX_SEND_LAG_P99_MS = 10.0
MIN_RATE_SHARE = 0.95
# Open sockets one client process may hold; a larger concurrency queues inside the pool.
MAX_POOL = 4096
_VOCABULARY = tuple(f"w{i}" for i in range(4096))


class LoadgenError(Exception):
    """The run could not start (no server, warm-up failed)."""


@dataclass(frozen=True)
class Target:
    base_url: str
    model: str | None = None
    tokenizer: str | None = None  # a local tokenizer.json; else one token per word
    request_timeout_s: float = 600.0


class ClientHealth(BaseModel):
    """How well the client kept to its plan while measuring."""

    intended_rate: float | None
    schedule_rate: float | None
    achieved_rate: float | None
    send_lag_p50_ms: float
    send_lag_p99_ms: float
    send_lag_max_ms: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    pool_size: int
    concurrency: int
    peak_in_flight: int
    ok: bool
    problems: list[str]


@dataclass
class LoadgenResult:
    metrics: Metrics
    health: ClientHealth
    context: dict[str, Any]
    percentiles: tuple[float, ...]
    outputs: list[RequestOutput] = field(repr=False, default_factory=list)

    @property
    def errors(self) -> list[str]:
        seen: list[str] = []
        for o in self.outputs:
            if not o.success and o.error not in seen:
                seen.append(o.error)
        return seen[:MAX_ERRORS_KEPT]

    def block(self) -> str:
        return format_block(self.metrics, self.percentiles)

    def save_result(self) -> dict[str, Any]:
        return save_result(self.metrics, self.context, self.errors, self.health.model_dump())


class Prompts:
    """Random prompts of a known token count: from a local tokenizer when given (random ids,
    decoded, counted again as vLLM's random dataset does), else one token per word."""

    def __init__(self, rng: random.Random, tokenizer_path: str | None) -> None:
        self.rng = rng
        self.tokenizer = None
        self._stable: dict[int, bool] = {}
        if tokenizer_path:
            from tokenizers import Tokenizer  # optional dependency: pip install tokenizers

            self.tokenizer = Tokenizer.from_file(tokenizer_path)

    def make(self, length: int) -> tuple[str, int]:
        if self.tokenizer is None:
            return " ".join(self.rng.choices(_VOCABULARY, k=length)), length
        ids = [self._stable_id() for _ in range(length)]
        # Decoding and encoding again need not give the same tokens: trim or top up until
        # the text holds the asked length (a few rounds), and report what it really holds.
        for _ in range(5):
            text = self.tokenizer.decode(ids)
            again = self.tokenizer.encode(text, add_special_tokens=False).ids
            if len(again) == length:
                break
            ids = again[:length] + [self._stable_id() for _ in range(length - len(again))]
        return text, self.count(text)

    def _stable_id(self) -> int:
        """A random token that decodes and encodes back to itself (not [UNK] and the like)."""
        assert self.tokenizer is not None
        size = self.tokenizer.get_vocab_size()
        while True:
            token = self.rng.randrange(size)
            if token not in self._stable:
                text = self.tokenizer.decode([token])
                again = self.tokenizer.encode(text, add_special_tokens=False).ids
                self._stable[token] = again == [token]
            if self._stable[token]:
                return token

    def count(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text.split())
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


def arrival_times(n: int, rate: float | None, burstiness: float, rng: random.Random) -> list[float]:
    """Seconds after the start at which each request is due: all at 0 for an infinite rate,
    else gamma-distributed gaps (burstiness 1 = Poisson) with mean 1/rate."""
    if rate is None:
        return [0.0] * n
    scale = 1.0 / (rate * burstiness)
    times, t = [], 0.0
    for _ in range(n):
        times.append(t)
        t += rng.gammavariate(burstiness, scale)
    return times


def prompt_lengths(config: BenchmarkConfig, rng: random.Random) -> list[int]:
    low = max(1, round(config.input_len * (1 - config.input_range_ratio)))
    high = max(low, round(config.input_len * (1 + config.input_range_ratio)))
    return [rng.randint(low, high) for _ in range(config.num_prompts)]


class _LoopMonitor:
    """Measures how late the event loop wakes a task that sleeps a fixed short time."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _probe(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(LOOP_PROBE_S)
            self.lags_ms.append(max(0.0, (time.perf_counter() - start - LOOP_PROBE_S) * 1000))

    def __enter__(self) -> _LoopMonitor:
        self._task = asyncio.get_running_loop().create_task(self._probe())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class _Client:
    def __init__(self, config: BenchmarkConfig, target: Target, session: aiohttp.ClientSession):
        self.config = config
        self.target = target
        self.session = session
        self.chat = config.endpoint is Endpoint.CHAT
        path = "/v1/chat/completions" if self.chat else "/v1/completions"
        self.url = target.base_url.rstrip("/") + path
        self.in_flight = 0
        self.peak_in_flight = 0

    def payload(self, model: str, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": self.config.output_len,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": self.config.ignore_eos,
        }
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body

    def _text(self, choice: dict[str, Any]) -> str:
        if self.chat:
            return (choice.get("delta") or {}).get("content") or ""
        return choice.get("text") or ""

    async def send(
        self, model: str, prompt: str, out: RequestOutput, prompts: Prompts, t0: float
    ) -> RequestOutput:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        pieces: list[str] = []
        usage_tokens: int | None = None
        chunks = 0
        start = time.perf_counter()
        out.sent = start - t0
        last = start
        try:
            async with self.session.post(self.url, json=self.payload(model, prompt)) as resp:
                if resp.status != 200:
                    body = (await resp.text())[:300]
                    out.error = f"HTTP {resp.status}: {body}"
                    return out
                async for raw in resp.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        break
                    now = time.perf_counter()
                    chunk = json.loads(data)
                    if chunk.get("usage"):
                        usage_tokens = chunk["usage"].get("completion_tokens")
                    choices = chunk.get("choices") or []
                    text = self._text(choices[0]) if choices else ""
                    if not text:
                        continue
                    if chunks == 0:
                        out.ttft = now - start
                    else:
                        out.itl.append(now - last)
                    last = now
                    chunks += 1
                    pieces.append(text)
            if chunks == 0:
                out.error = "stream ended without any content"
                return out
            out.latency = last - start
            out.output_tokens = (
                usage_tokens if usage_tokens is not None else prompts.count("".join(pieces))
            )
            out.success = True
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            out.error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            self.in_flight -= 1
        return out


async def _model_name(session: aiohttp.ClientSession, target: Target) -> str:
    if target.model:
        return target.model
    url = target.base_url.rstrip("/") + "/v1/models"
    try:
        async with session.get(url) as resp:
            data = await resp.json()
        return data["data"][0]["id"]
    except (aiohttp.ClientError, TimeoutError, KeyError, IndexError, ValueError) as exc:
        raise LoadgenError(f"cannot list models at {url}: {exc}") from exc


async def _open_connections(session: aiohttp.ClientSession, target: Target, n: int) -> None:
    """Open the pool's connections before the clock starts: a burst of new TCP connections
    is the client's cost, not the server's, and a long-running server never sees one."""
    url = target.base_url.rstrip("/") + "/health"

    async def probe() -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url) as resp:
                await resp.read()

    await asyncio.gather(*(probe() for _ in range(n)))


def _health(
    config: BenchmarkConfig,
    outputs: list[RequestOutput],
    dispatched: list[float],
    loop_lags: list[float],
    pool: int,
    concurrency: int,
    peak: int,
) -> ClientHealth:
    lags = [(d - o.scheduled) * 1000 for d, o in zip(dispatched, outputs, strict=True)]
    span = max(dispatched) - min(dispatched) if len(dispatched) > 1 else 0.0
    planned = [o.scheduled for o in outputs]
    planned_span = max(planned) - min(planned) if len(planned) > 1 else 0.0
    n = len(outputs) - 1
    schedule_rate = n / planned_span if planned_span else None
    achieved = n / span if span else None
    problems: list[str] = []
    lag_p99 = percentile(lags, 99)
    loop_p99 = percentile(loop_lags, 99)
    if loop_p99 > MAX_LOOP_LAG_P99_MS:
        problems.append(
            f"event loop lagged {loop_p99:.1f} ms at p99 (limit {MAX_LOOP_LAG_P99_MS} ms)"
        )
    if config.request_rate is not None and lag_p99 > MAX_SEND_LAG_P99_MS:
        problems.append(
            f"requests went out {lag_p99:.1f} ms late at p99 (limit {MAX_SEND_LAG_P99_MS} ms)"
        )
    if schedule_rate and achieved and achieved < MIN_RATE_SHARE * schedule_rate:
        problems.append(f"achieved {achieved:.2f} req/s of the {schedule_rate:.2f} req/s scheduled")
    if pool < concurrency:
        problems.append(f"connection pool of {pool} below the concurrency of {concurrency}")
    return ClientHealth(
        intended_rate=config.request_rate,
        schedule_rate=schedule_rate,
        achieved_rate=achieved,
        send_lag_p50_ms=percentile(lags, 50),
        send_lag_p99_ms=lag_p99,
        send_lag_max_ms=max(lags, default=0.0),
        loop_lag_p99_ms=loop_p99,
        loop_lag_max_ms=max(loop_lags, default=0.0),
        pool_size=pool,
        concurrency=concurrency,
        peak_in_flight=peak,
        ok=not problems,
        problems=problems,
    )


async def run_load(
    config: BenchmarkConfig,
    target: Target,
    on_done: Callable[[RequestOutput], None] | None = None,
) -> LoadgenResult:
    """Measure ``target`` under ``config``'s workload."""
    rng = random.Random(config.seed)
    prompts = Prompts(rng, target.tokenizer)
    concurrency = config.max_concurrency or config.num_prompts
    pool = min(concurrency, MAX_POOL)
    timeout = aiohttp.ClientTimeout(total=target.request_timeout_s)
    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        model = await _model_name(session, target)
        client = _Client(config, target, session)
        await _open_connections(session, target, min(pool, config.num_prompts))
        for _ in range(config.warmup_requests):
            text, n = prompts.make(config.input_len)
            warm = await client.send(model, text, RequestOutput(prompt_len=n), prompts, 0.0)
            if not warm.success:
                raise LoadgenError(f"warm-up request failed: {warm.error}")
        lengths = prompt_lengths(config, rng)
        jobs = [prompts.make(n) for n in lengths]
        schedule = arrival_times(len(jobs), config.request_rate, config.burstiness, rng)
        slots = asyncio.Semaphore(concurrency)
        outputs = [
            RequestOutput(prompt_len=n, scheduled=s)
            for (_, n), s in zip(jobs, schedule, strict=True)
        ]
        dispatched: list[float] = []

        async def one(text: str, out: RequestOutput) -> None:
            async with slots:
                await client.send(model, text, out, prompts, t0)
            if on_done is not None:
                on_done(out)

        with _LoopMonitor() as monitor:
            t0 = time.perf_counter()
            tasks = []
            for (text, _n), out in zip(jobs, outputs, strict=True):
                delay = out.scheduled - (time.perf_counter() - t0)
                if delay > 0:
                    await asyncio.sleep(delay)
                dispatched.append(time.perf_counter() - t0)
                tasks.append(asyncio.create_task(one(text, out)))
            await asyncio.gather(*tasks)
            duration = time.perf_counter() - t0
    metrics = compute_metrics(outputs, duration, config.percentiles)
    health = _health(
        config,
        outputs,
        dispatched,
        monitor.lags_ms,
        concurrency,
        concurrency,
        client.peak_in_flight,
    )
    context = {
        "date": datetime.now(UTC).strftime("%Y%m%d-%H%M%S"),
        "backend": CLIENT_NAME,
        "endpoint_type": config.endpoint.value,
        "model_id": model,
        "tokenizer_id": target.tokenizer or "words",
        "num_prompts": config.num_prompts,
        "request_rate": "inf" if config.request_rate is None else config.request_rate,
        "burstiness": config.burstiness,
        "max_concurrency": config.max_concurrency,
        "input_len": config.input_len,
        "output_len": config.output_len,
        "ignore_eos": config.ignore_eos,
        "seed": config.seed,
        "config_hash": config.config_hash,
    }
    return LoadgenResult(metrics, health, context, config.percentiles, outputs)


def run(
    config: BenchmarkConfig,
    target: Target,
    *,
    progress: Callable[[RequestOutput], None] | None = None,
) -> LoadgenResult:
    return asyncio.run(run_load(config, target, progress))
