"""A simulated OpenAI-compatible inference server, the stand-in for vLLM in tests and the demo.

Endpoints as vLLM serves them: ``/v1/completions`` (streaming and not), ``/v1/chat/completions``,
``/v1/models``, ``/health``; usage is reported like vLLM (``stream_options.include_usage``).

Timing follows a small continuous-batching model. Up to ``max_num_seqs`` sequences run at once;
the rest queue. A sequence's first token comes ``ttft_ms + prefill_ms_per_token * prompt_tokens``
after it is admitted. Each next token comes one decode step later, where a step takes
``itl_ms + itl_per_seq_ms * (running - 1)`` plus the prefill work admitted since the last step
(prefill stalls decoding, as on a real server). Token times are kept on an absolute schedule,
so timer overshoot does not accumulate. A faster code version (smaller step, cheaper prefill)
therefore shows in throughput and latency the way it would on a real server.

Faults on request: crash on start, crash after N requests, hang (never answers), a 5xx rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta")


class SimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "isobench/sim-model"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    ttft_ms: float = Field(20.0, ge=0, description="admission to first token, before prefill")
    itl_ms: float = Field(10.0, gt=0, description="decode step with one running sequence")
    itl_per_seq_ms: float = Field(0.0, ge=0, description="step growth per extra sequence")
    prefill_ms_per_token: float = Field(0.0, ge=0, description="prefill cost per prompt token")
    max_num_seqs: int = Field(256, ge=1, description="batch limit; more requests queue")
    max_model_len: int = Field(8192, ge=1)
    startup_delay_s: float = Field(0.0, ge=0)
    crash_on_start: bool = False
    crash_after_requests: int | None = Field(None, ge=0)
    hang: bool = Field(False, description="start listening but never answer")
    error_rate: float = Field(0.0, ge=0, le=1, description="share of requests answered 500")
    seed: int = 0


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def _error(status: int, message: str, kind: str) -> web.Response:
    body = {"object": "error", "message": message, "type": kind, "code": status}
    return web.json_response(body, status=status)


class SimEngine:
    """The batching model; ``generate`` yields a sequence's tokens on schedule."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.slots = asyncio.Semaphore(config.max_num_seqs)
        self.running = 0
        self.prefill_work_ms = 0.0  # all prefill work admitted so far; decoders pay the new part

    async def generate(self, prompt_tokens: int, max_tokens: int) -> AsyncIterator[int]:
        cfg = self.config
        loop = asyncio.get_running_loop()
        async with self.slots:
            self.running += 1
            own_prefill = cfg.prefill_ms_per_token * prompt_tokens
            self.prefill_work_ms += own_prefill
            seen = self.prefill_work_ms
            deadline = loop.time() + (cfg.ttft_ms + own_prefill) / 1000
            try:
                for index in range(max_tokens):
                    delay = deadline - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    yield index
                    stall = self.prefill_work_ms - seen
                    seen = self.prefill_work_ms
                    step = cfg.itl_ms + cfg.itl_per_seq_ms * (self.running - 1) + stall
                    deadline += step / 1000
            finally:
                self.running -= 1


class SimServer:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = SimEngine(config)
        self.rng = random.Random(config.seed)
        self.requests = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def _hang_if_asked(self) -> None:
        if self.config.hang:
            await asyncio.Event().wait()

    async def health(self, _request: web.Request) -> web.Response:
        await self._hang_if_asked()
        return web.Response(status=200)

    async def models(self, _request: web.Request) -> web.Response:
        await self._hang_if_asked()
        card = {
            "id": self.config.model,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "isobench",
            "root": self.config.model,
            "max_model_len": self.config.max_model_len,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    def _count_request(self) -> None:
        self.requests += 1
        limit = self.config.crash_after_requests
        if limit is not None and self.requests > limit:
            print(
                f"RuntimeError: simulated crash after {limit} requests",
                file=sys.stderr,
                flush=True,
            )
            os._exit(1)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        await self._hang_if_asked()
        self._count_request()
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "request body is not JSON", "BadRequestError")
        if body.get("model") not in (None, self.config.model):
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        if chat:
            messages = body.get("messages") or []
            prompt = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        else:
            raw = body.get("prompt", "")
            prompt = raw[0] if isinstance(raw, list) and raw else str(raw)
        prompt_tokens = count_tokens(prompt)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        if prompt_tokens + max_tokens > self.config.max_model_len:
            return _error(
                400,
                f"This model's maximum context length is {self.config.max_model_len} tokens.",
                "BadRequestError",
            )
        if self.config.error_rate and self.rng.random() < self.config.error_rate:
            return _error(500, "simulated internal server error", "InternalServerError")
        ids = (f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", int(time.time()))
        usage_wanted = bool((body.get("stream_options") or {}).get("include_usage"))
        tokens = self.engine.generate(prompt_tokens, max_tokens)
        if body.get("stream"):
            return await self._stream(request, tokens, chat, ids, prompt_tokens, usage_wanted)
        text = []
        async with contextlib.aclosing(tokens) as stream:
            async for index in stream:
                text.append(" " + WORDS[index % len(WORDS)])
        return web.json_response(self._full(chat, ids, "".join(text), prompt_tokens, len(text)))

    def _usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def _full(
        self, chat: bool, ids: tuple[str, int], text: str, prompt_tokens: int, n: int
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return {
            "id": ids[0],
            "object": "chat.completion" if chat else "text_completion",
            "created": ids[1],
            "model": self.config.model,
            "choices": [choice],
            "usage": self._usage(prompt_tokens, n),
        }

    def _chunk(
        self,
        chat: bool,
        ids: tuple[str, int],
        choices: list[dict[str, Any]],
        usage: dict[str, int] | None = None,
    ) -> bytes:
        payload: dict[str, Any] = {
            "id": ids[0],
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": ids[1],
            "model": self.config.model,
            "choices": choices,
        }
        if usage is not None:
            payload["usage"] = usage
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    async def _stream(
        self,
        request: web.Request,
        tokens: AsyncIterator[int],
        chat: bool,
        ids: tuple[str, int],
        prompt_tokens: int,
        usage_wanted: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        produced = 0
        async with contextlib.aclosing(tokens) as stream:
            async for index in stream:
                word = " " + WORDS[index % len(WORDS)]
                choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": None}
                if chat:
                    delta = {"content": word}
                    if produced == 0:
                        delta = {"role": "assistant", "content": word}
                    choice["delta"] = delta
                else:
                    choice["text"] = word
                await response.write(self._chunk(chat, ids, [choice]))
                produced += 1
        # vLLM closes a stream with an empty choice carrying the finish reason, then usage.
        final: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "length"}
        final["delta" if chat else "text"] = {} if chat else ""
        await response.write(self._chunk(chat, ids, [final]))
        if usage_wanted:
            usage = self._usage(prompt_tokens, produced)
            await response.write(self._chunk(chat, ids, [], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _log(message: str) -> None:
    stamp = time.strftime("%m-%d %H:%M:%S")
    print(f"INFO {stamp} [sim_server.py] {message}", flush=True)


async def serve(config: SimConfig, *, ready: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or until cancelled)."""
    _log(f"isobench simulated inference server; args: {config.model_dump_json()}")
    if config.crash_on_start:
        print("Traceback (most recent call last):", file=sys.stderr)
        print('  File "sim_server.py", line 1, in <module>', file=sys.stderr)
        print("RuntimeError: simulated crash on start", file=sys.stderr, flush=True)
        raise SystemExit(1)
    if config.startup_delay_s:
        _log(f"loading model {config.model} ({config.startup_delay_s:.1f} s)")
        await asyncio.sleep(config.startup_delay_s)
    runner = web.AppRunner(SimServer(config).app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    port = site._server.sockets[0].getsockname()[1] if site._server else config.port  # type: ignore[union-attr]
    print(f"INFO:     Uvicorn running on http://{config.host}:{port} (Press CTRL+C to quit)")
    print("INFO:     Application startup complete.", flush=True)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(config: SimConfig) -> None:
    asyncio.run(serve(config))
