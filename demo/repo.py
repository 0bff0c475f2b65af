"""Build the demo's git repository and its agent patches.

The server's speed is decided by its own code: ``server.py`` sets the simulated decode step,
its growth per running sequence and the prefill cost, and starts isobench's simulated
inference server with them. The human commit makes the decode step faster; the agents' patches
are faster than the human's, as fast, of no gain, crash on start, or do not apply.
"""

from __future__ import annotations

import difflib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from isobench.models.domain import BenchmarkKind, BenchmarkSpec, Task

TASK_ID = "demo-0001"
MODEL = "demo/sim-model"
SERVER_COMMAND = ["{python}", "server.py", "--port", "{port}"]

SERVER = '''"""A tiny inference server whose speed is decided by this file (isobench's demo)."""

import argparse

from isobench.tasks.sim_server import SimConfig, run

# Cost of one decode step with a single running sequence, in milliseconds.
DECODE_STEP_MS = {step}
# Extra cost of a decode step for every further sequence in the batch.
PER_SEQUENCE_MS = {per_seq}
# Prefill cost per prompt token.
PREFILL_MS_PER_TOKEN = 0.02


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run(
        SimConfig(
            model="{model}",
            port=args.port,
            ttft_ms=20.0,
            itl_ms=DECODE_STEP_MS,
            itl_per_seq_ms=PER_SEQUENCE_MS,
            prefill_ms_per_token=PREFILL_MS_PER_TOKEN,
        )
    )


if __name__ == "__main__":
    main()
'''


# The repository's own benchmark script, as vLLM keeps benchmarks/benchmark_serving.py.
BENCHMARK_SCRIPT = '''"""The demo's own serving benchmark: prints vLLM's result block."""

import argparse

from isobench.models.domain import BenchmarkConfig
from isobench.tasks.loadgen import Target, run

parser = argparse.ArgumentParser()
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8000)
parser.add_argument("--num-prompts", type=int, default=16)
args = parser.parse_args()
config = BenchmarkConfig(
    input_len=64, output_len=32, num_prompts=args.num_prompts, request_rate=None, max_concurrency=8
)
print(run(config, Target(f"http://{args.host}:{args.port}")).block())
'''
BENCHMARK_COMMAND = "python benchmark.py --num-prompts 16"


def _server(step: str, per_seq: str = "0.5") -> str:
    return SERVER.format(step=step, per_seq=per_seq, model=MODEL)


# Agent name -> (what the patch does, the server.py it leads to) for patches made with git.
AGENT_CHANGES = {
    "demo/faster": ("faster than human", _server("6.0", "0.3")),
    "demo/as-fast": ("as fast as human", _server("8.0")),
    "demo/no-gain": (
        "no gain",
        _server("12.0").replace("in milliseconds.", "in milliseconds (measured on the parent)."),
    ),
    "demo/crash": (
        "crashes on start",
        _server("6.0").replace(
            "import argparse\n", "import argparse\n\nimport fused_decode_kernels  # noqa: F401\n"
        ),
    ),
}
# A patch written against code this repository never had: it does not apply.
BAD_PATCH = "\n".join(
    [
        "diff --git a/server.py b/server.py",
        "--- a/server.py",
        "+++ b/server.py",
        "@@ -5,6 +5,6 @@",
        " from isobench.tasks.sim_server import SimConfig, run",
        " ",
        " # Cost of one decode step, in microseconds.",
        "-DECODE_STEP_US = 12000",
        "+DECODE_STEP_US = 4000",
        " # Extra cost of a decode step for every further sequence in the batch.",
        " PER_SEQUENCE_MS = 0.5",
        "",
    ]
)
EXPECTED = {
    "demo/faster": "success",
    "demo/as-fast": "success",
    "demo/no-gain": "success",
    "demo/crash": "server_crashed",
    "demo/bad-patch": "patch_failed",
}


@dataclass(frozen=True)
class DemoRepo:
    path: Path
    task: Task
    patches: dict[str, str]


def _git(repo: Path, *args: str) -> str:
    env_args = ["-c", "user.name=isobench demo", "-c", "user.email=demo@isobench.invalid"]
    done = subprocess.run(
        ["git", *env_args, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _commit(repo: Path, text: str, message: str) -> str:
    (repo / "server.py").write_text(text)
    _git(repo, "add", "server.py")
    _git(repo, "commit", "--quiet", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def build_demo_repo(path: Path) -> DemoRepo:
    """Create (or reuse) the demo repository at ``path``; same content, same commits."""
    if not (path / ".git").is_dir():
        path.mkdir(parents=True, exist_ok=True)
        _git(path, "init", "--quiet", "--initial-branch=main")
        (path / "README.md").write_text("isobench demo: a simulated inference server.\n")
        (path / "benchmark.py").write_text(BENCHMARK_SCRIPT)
        _git(path, "add", "README.md", "benchmark.py")
        _commit(path, _server("12.0"), "Simulated server: decode step 12 ms")
        _commit(path, _server("8.0"), "Faster decode step (the human optimization)")
    human = _git(path, "rev-parse", "main")
    parent = _git(path, "rev-parse", "main~1")
    patches: dict[str, str] = {}
    old = _git(path, "show", f"{parent}:server.py") + "\n"
    for agent, (_what, text) in AGENT_CHANGES.items():
        patches[agent] = server_diff(old, text)
    patches["demo/bad-patch"] = BAD_PATCH
    task = Task(
        task_id=TASK_ID,
        repo_url=str(path),
        human_commit=human,
        parent_commit=parent,
        model=MODEL,
        benchmark=BenchmarkSpec(
            kind=BenchmarkKind.SERVING,
            command=BENCHMARK_COMMAND,
            mode_as_given="serving",
        ),
        notes="isobench demo task: the simulated server, slow parent, faster human commit",
    )
    return DemoRepo(path, task, patches)


def server_diff(old: str, new: str) -> str:
    """The agent's unified diff against the parent's server.py."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile="a/server.py",
        tofile="b/server.py",
    )
    return "diff --git a/server.py b/server.py\n" + "".join(lines)
