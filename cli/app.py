"""``isobench``: load tasks and patches, import and export results, report."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.orm import Session

from isobench import __version__
from isobench.intake import load as intake
from isobench.intake.rows import InputError
from isobench.models.domain import (
    WORKLOAD_PRESETS,
    Arm,
    BenchmarkConfig,
    Endpoint,
    Selection,
    Timeouts,
)
from isobench.models.outcomes import Outcome
from isobench.models.settings import Settings
from isobench.report import compare
from isobench.report import summary as report_summary
from isobench.report.export import export_runs
from isobench.store import migrate, repository
from isobench.store.engine import session_scope
from isobench.store.repository import ConflictError
from isobench.tasks.loadgen import LoadgenError, Target
from isobench.tasks.loadgen import run as run_loadgen
from isobench.tasks.parse import parse_output, parse_results
from isobench.tasks.sim_server import SimConfig
from isobench.tasks.sim_server import run as run_sim_server

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Create, upgrade and inspect the schema.")
tasks_app = typer.Typer(no_args_is_help=True, help="Load and list tasks.")
patches_app = typer.Typer(no_args_is_help=True, help="Load agent patches.")
app.add_typer(db_app, name="db")
app.add_typer(tasks_app, name="tasks")
app.add_typer(patches_app, name="patches")

# Piped output is read by scripts and diffed in CI: give tables room instead of wrapping.
out = Console(width=None if sys.stdout.isatty() else 200, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, soft_wrap=True)


class ReportFormat(StrEnum):
    TABLE = "table"
    MARKDOWN = "markdown"
    JSON = "json"
    CSV = "csv"


T = TypeVar("T")


def _settings(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


def _ready_url(ctx: typer.Context) -> str:
    """The database URL, after checking the schema is current (a clear error, not a trace)."""
    url = _settings(ctx).database_url
    if not migrate.is_up_to_date(url):
        err.print(
            f"[red]The database at {url} is not at the current schema: run 'isobench db upgrade'."
        )
        raise typer.Exit(3)
    return url


def _fail_input(exc: InputError | ConflictError) -> NoReturn:
    errors = exc.errors if isinstance(exc, InputError) else [exc]
    err.print(f"[red]Nothing was written: {len(errors)} problem(s) in the input.")
    for item in errors:
        err.print(f"  {item}", markup=False, highlight=False)
    raise typer.Exit(2)


def _write(ctx: typer.Context, work: Callable[[Session], T]) -> T:
    """Run ``work`` as one transaction; bad input exits 2 with every error listed."""
    url = _ready_url(ctx)
    try:
        with session_scope(url) as session:
            return work(session)
    except (InputError, ConflictError) as exc:
        _fail_input(exc)


@app.callback()
def main_callback(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Overrides ISOBENCH_DATABASE_URL (default: SQLite in the working directory).",
        ),
    ] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"isobench {__version__}")
        raise typer.Exit()
    overrides = {"database_url": database_url} if database_url else {}
    ctx.obj = Settings(**overrides)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = "head") -> None:
    """Create the schema or upgrade it to REVISION."""
    url = _settings(ctx).database_url
    migrate.upgrade(url, revision)
    out.print(f"database at revision {migrate.current_revision(url)} ({url})")


@db_app.command("downgrade")
def db_downgrade(ctx: typer.Context, revision: str = "base") -> None:
    """Downgrade the schema to REVISION (base drops every table)."""
    url = _settings(ctx).database_url
    migrate.downgrade(url, revision)
    out.print(f"database at revision {migrate.current_revision(url)} ({url})")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the schema revision and whether it is the newest."""
    url = _settings(ctx).database_url
    current, head = migrate.current_revision(url), migrate.head_revision(url)
    out.print(
        f"current: {current}  head: {head}  {'up to date' if current == head else 'UPGRADE NEEDED'}"
    )


@tasks_app.command("load")
def tasks_load(ctx: typer.Context, file: Path) -> None:
    """Load a task list (.json, .jsonl or .csv); all rows or none."""
    tasks, counts = _write(ctx, lambda session: intake.load_tasks(session=session, path=file))
    cannot = [t for t in tasks if not t.runnable]
    out.print(
        f"{len(tasks)} tasks from {file}: {counts.created} new, {counts.updated} updated, "
        f"{counts.unchanged} unchanged; {len(cannot)} cannot run as given"
    )
    for task in cannot:
        out.print(f"  {task.task_id}: {'; '.join(task.problems)}", markup=False, highlight=False)


@tasks_app.command("list")
def tasks_list(
    ctx: typer.Context,
    problems: Annotated[bool, typer.Option(help="Only tasks that cannot run, with why.")] = False,
) -> None:
    """List loaded tasks."""
    url = _ready_url(ctx)
    with session_scope(url) as session:
        tasks = repository.list_tasks(session=session)
    table = Table("task", "model", "kind", "gpus", "runnable", "problems / warnings")
    for t in tasks:
        if problems and t.runnable:
            continue
        kind = t.benchmark.kind.value if t.benchmark.kind else "-"
        notes = "; ".join(t.problems + t.warnings)
        table.add_row(
            t.task_id, t.model or "-", kind, str(t.gpus), "yes" if t.runnable else "no", notes
        )
    out.print(table)


@patches_app.command("load")
def patches_load(
    ctx: typer.Context,
    source: Annotated[
        Path, typer.Argument(help="A directory of .patch/.diff files, or a .jsonl file.")
    ],
    agent: Annotated[
        str | None, typer.Option(help="Agent name (required for a directory).")
    ] = None,
) -> None:
    """Load agent patches; rejected patches are recorded with their reason."""
    limit = _settings(ctx).max_patch_bytes
    result = _write(
        ctx,
        lambda session: intake.load_patches(
            session=session, source=source, agent=agent, max_bytes=limit
        ),
    )
    out.print(
        f"{len(result.patches)} patches: {result.created} new, {result.already} already loaded"
    )
    for item in result.patches:
        p = item.patch
        if p.status.value != "ok" or p.flags:
            detail = p.reason if p.status.value != "ok" else ", ".join(p.flags)
            out.print(
                f"  {p.agent}/{p.task_id}: {p.status.value}: {detail} ({item.where})", markup=False
            )


@app.command("import-results")
def import_results(
    ctx: typer.Context,
    directory: Path,
    agent: Annotated[str, typer.Option(help="The agent whose results these are.")],
    keep_going: Annotated[
        bool, typer.Option(help="Import the good files even if some are bad.")
    ] = False,
) -> None:
    """Import result files of the source benchmark, classified by what their logs show."""
    limit = _settings(ctx).log_tail_bytes
    result = _write(
        ctx,
        lambda session: intake.import_results(
            session=session, root=directory, agent=agent, log_limit=limit, keep_going=keep_going
        ),
    )
    out.print(
        f"{result.files} result files: {result.imported} imported, "
        f"{result.already} already imported, {len(result.rejected)} rejected; "
        f"tasks created from records: {len(result.tasks_created)}"
    )
    for outcome, count in sorted(result.outcomes.items()):
        out.print(f"  {outcome}: {count}")
    for item in result.rejected:
        err.print(f"  rejected: {item}", markup=False)
    if result.skipped_files:
        out.print(f"  {len(result.skipped_files)} other JSON files ignored (not *_result.json)")


@app.command("export-results")
def export_results(
    ctx: typer.Context,
    directory: Path,
    agent: Annotated[
        str | None, typer.Option(help="Only this agent, written flat into DIRECTORY.")
    ] = None,
) -> None:
    """Write the latest results in the source schema, with the full latency metrics."""
    url = _ready_url(ctx)
    with session_scope(url) as session:
        runs = repository.latest_runs(session=session, agent=agent)
        written = export_runs(runs, directory, flat=agent is not None)
    out.print(f"{len(written)} result files written to {directory}")


@app.command("report")
def report(
    ctx: typer.Context,
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.TABLE,
    agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
) -> None:
    """Per agent: total, successful, error, timeout, success rate and the outcome breakdown."""
    url = _ready_url(ctx)
    with session_scope(url) as session:
        summaries = report_summary.summarize_runs(
            repository.latest_runs(session=session, agent=agent)
        )
    renderers = {
        ReportFormat.MARKDOWN: report_summary.to_markdown,
        ReportFormat.JSON: report_summary.to_json,
        ReportFormat.CSV: report_summary.to_csv,
    }
    if fmt in renderers:
        sys.stdout.write(renderers[fmt](summaries))
    else:
        cols, body = report_summary.table_rows(summaries)
        table = Table(*cols, title="Results per agent (latest attempt per task, arm and config)")
        for row in body:
            table.add_row(*row)
        out.print(table)


@app.command("runs")
def runs(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option(help="Only this agent.")] = None,
    outcome: Annotated[Outcome | None, typer.Option(help="Only this outcome.")] = None,
) -> None:
    """The latest attempts with their outcome, cause, flags and reason."""
    url = _ready_url(ctx)
    table = Table("task", "arm", "agent", "outcome", "cause", "flags", "reason")
    with session_scope(url) as session:
        for r in repository.latest_runs(session=session, agent=agent):
            if outcome and r.outcome != outcome:
                continue
            table.add_row(
                r.task_id,
                r.arm,
                r.agent.name if r.agent else "-",
                r.outcome,
                r.cause or "-",
                ", ".join(r.flags),
                r.reason[:120],
            )
    out.print(table)


EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_AGENT = "example-agent"


@app.command("example")
def example(
    ctx: typer.Context,
    examples: Annotated[Path, typer.Option(help="The bundled example folder.")] = EXAMPLES_DIR,
) -> None:
    """Load the bundled example (real tasks, patches, result files of the source benchmark's
    schema) and print the report."""
    if not (examples / "tasks.jsonl").is_file():
        err.print(f"[red]No example at {examples} (expected tasks.jsonl, patches/, results/).")
        raise typer.Exit(2)
    ctx.invoke(db_upgrade, ctx=ctx)
    ctx.invoke(tasks_load, ctx=ctx, file=examples / "tasks.jsonl")
    ctx.invoke(patches_load, ctx=ctx, source=examples / "patches", agent=EXAMPLE_AGENT)
    ctx.invoke(import_results, ctx=ctx, directory=examples / "results", agent=EXAMPLE_AGENT)
    ctx.invoke(report, ctx=ctx, fmt=ReportFormat.TABLE, agent=None)
    ctx.invoke(runs, ctx=ctx, agent=None, outcome=None)


def _print_tables(db_url: str, config_hash: str) -> None:
    with session_scope(db_url) as session:
        latest = repository.latest_runs(session=session, config_hash=config_hash)
        summaries = report_summary.summarize_runs(latest)
        lines = compare.compare(latest)
    cols, body = report_summary.table_rows(summaries)
    table = Table(*cols, title="Results per agent")
    for row in body:
        table.add_row(*row)
    out.print(table)
    table = Table(*compare.HEADERS, title="Per task: every arm against baseline and human")
    for row in compare.rows(lines):
        table.add_row(*row)
    out.print(table)


@app.command("demo")
def demo(
    ctx: typer.Context,
    workdir: Annotated[
        Path, typer.Option(help="Where the demo keeps its repository, checkouts and logs.")
    ] = Path("isobench-demo"),
    force: Annotated[bool, typer.Option(help="Measure again what was measured before.")] = False,
) -> None:
    """The main job on the embedded default: a git repository of the simulated server (slow
    parent, faster human commit, five agent patches) swept through the whole pipeline with
    the process runtime, SQLite and Prefect's local mode."""
    from isobench.demo.run import prefect_local_mode, run_demo

    settings = _settings(ctx)
    workdir = workdir.resolve()
    prefect_local_mode(workdir)
    started = time.monotonic()
    result = run_demo(
        workdir, settings.database_url, max_patch_bytes=settings.max_patch_bytes, force=force
    )
    reused = sum(1 for r in result.results if r["reused"])
    out.print(
        f"{len(result.results)} arms: {len(result.results) - reused} measured, {reused} reused "
        f"from earlier runs ({settings.database_url})"
    )
    _print_tables(settings.database_url, result.config_hash)
    out.print(f"demo wall time: {time.monotonic() - started:.1f} s")


@app.command("parse")
def parse(
    file: Annotated[
        Path,
        typer.Argument(
            help="Benchmark output: a log, a text block or JSON.", exists=True, dir_okay=False
        ),
    ],
    all_results: Annotated[
        bool, typer.Option("--all", help="Every result in the file, not the run's one.")
    ] = False,
) -> None:
    """Print the metrics found in a vLLM benchmark output as JSON (no_metrics with the reason
    when there are none; exit code 1 then)."""
    text = file.read_text(encoding="utf-8", errors="replace")
    if all_results:
        found = [{"kind": r.kind, **r.context, **r.values} for r in parse_results(text)]
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        raise typer.Exit(0 if found else 1)
    parsed = parse_output(text)
    if parsed.metrics is None:
        body: dict[str, object] = {"outcome": Outcome.NO_METRICS.value, "reason": parsed.reason}
    else:
        body = {"format": parsed.format, "notes": parsed.notes, "metrics": parsed.metrics.flat()}
    sys.stdout.write(json.dumps(body, indent=2) + "\n")
    raise typer.Exit(0 if parsed.metrics is not None else 1)


@app.command("sim-server")
def sim_server(
    port: int = 8000,
    host: str = "127.0.0.1",
    model: str = SimConfig.model_fields["model"].default,
    ttft_ms: float = 20.0,
    itl_ms: float = 10.0,
    itl_per_seq_ms: float = 0.0,
    prefill_ms_per_token: float = 0.0,
    max_num_seqs: int = 256,
    startup_delay_s: float = 0.0,
    crash_on_start: bool = False,
    crash_after_requests: int | None = None,
    hang: bool = False,
    error_rate: float = 0.0,
    seed: int = 0,
) -> None:
    """Run the simulated OpenAI-compatible inference server (the stand-in for vLLM)."""
    config = SimConfig(
        host=host,
        port=port,
        model=model,
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        itl_per_seq_ms=itl_per_seq_ms,
        prefill_ms_per_token=prefill_ms_per_token,
        max_num_seqs=max_num_seqs,
        startup_delay_s=startup_delay_s,
        crash_on_start=crash_on_start,
        crash_after_requests=crash_after_requests,
        hang=hang,
        error_rate=error_rate,
        seed=seed,
    )
    run_sim_server(config)


def _rate(text: str) -> float | None:
    if text.strip().lower() == "inf":
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--request-rate: a number or 'inf', not {text!r}") from exc


def _percentiles(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"expected numbers separated by commas, got {text!r}") from exc


@app.command("loadgen")
def loadgen(
    base_url: Annotated[str, typer.Option(help="The server, e.g. http://127.0.0.1:8000")],
    preset: Annotated[str, typer.Option(help="recommended or legacy")] = "recommended",
    endpoint: Annotated[Endpoint | None, typer.Option()] = None,
    input_len: Annotated[int | None, typer.Option()] = None,
    input_range_ratio: Annotated[float | None, typer.Option()] = None,
    output_len: Annotated[int | None, typer.Option()] = None,
    num_prompts: Annotated[int | None, typer.Option()] = None,
    request_rate: Annotated[
        str | None, typer.Option(help="requests/s, or 'inf' to send all at once")
    ] = None,
    burstiness: Annotated[float | None, typer.Option()] = None,
    max_concurrency: Annotated[int | None, typer.Option()] = None,
    ignore_eos: Annotated[bool | None, typer.Option("--ignore-eos/--no-ignore-eos")] = None,
    percentiles: Annotated[str | None, typer.Option(help="e.g. 50,90,99")] = None,
    warmup_requests: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option(help="Default: the server's first model.")] = None,
    tokenizer: Annotated[
        Path | None, typer.Option(help="A local tokenizer.json (needs 'tokenizers').")
    ] = None,
    save_result: Annotated[Path | None, typer.Option(help="Write the result JSON here.")] = None,
) -> None:
    """Measure an OpenAI-compatible server with streaming requests (vLLM's metric definitions)."""
    if preset not in WORKLOAD_PRESETS:
        raise typer.BadParameter(f"--preset must be one of {', '.join(WORKLOAD_PRESETS)}")
    changes: dict[str, object] = {
        "endpoint": endpoint,
        "input_len": input_len,
        "input_range_ratio": input_range_ratio,
        "output_len": output_len,
        "num_prompts": num_prompts,
        "burstiness": burstiness,
        "max_concurrency": max_concurrency,
        "ignore_eos": ignore_eos,
        "warmup_requests": warmup_requests,
        "seed": seed,
        "percentiles": _percentiles(percentiles) if percentiles else None,
    }
    overrides = {k: v for k, v in changes.items() if v is not None}
    if request_rate is not None:
        overrides["request_rate"] = _rate(request_rate)
    try:
        config = BenchmarkConfig.model_validate(WORKLOAD_PRESETS[preset].model_dump() | overrides)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    target = Target(base_url, model=model, tokenizer=str(tokenizer) if tokenizer else None)
    show = sys.stderr.isatty()
    with Progress(console=err, disable=not show, transient=True) as bar:
        job = bar.add_task("requests", total=config.num_prompts)
        try:
            result = run_loadgen(config, target, progress=lambda _o: bar.advance(job))
        except LoadgenError as exc:
            err.print(f"[red]{exc}")
            raise typer.Exit(1) from exc
    sys.stdout.write(result.block() + "\n")
    if save_result is not None:
        save_result.write_text(json.dumps(result.save_result(), indent=2) + "\n")
    for problem in result.health.problems:
        err.print(f"[yellow]client could not keep up: {problem}")
    for error in result.errors:
        err.print(f"failed request: {error}", markup=False)


@app.command("sweep")
def sweep_command(
    ctx: typer.Context,
    repo: Annotated[
        Path | None, typer.Option(help="process runtime: a git repository of the tasks' commits.")
    ] = None,
    runtime: Annotated[str, typer.Option(help="process or docker")] = "process",
    image_template: Annotated[
        str | None,
        typer.Option(
            help="docker runtime: baseline/human image of a commit, e.g. 'vllm:{commit12}'."
        ),
    ] = None,
    source_root: Annotated[
        str, typer.Option(help="docker runtime: the code under test inside the image.")
    ] = "/workspace",
    device: Annotated[
        list[str] | None, typer.Option(help="docker runtime: GPU ids to pin (repeatable).")
    ] = None,
    pin_gpus: Annotated[
        bool, typer.Option(help="docker runtime: pin the GPUs whose slots the arm holds.")
    ] = False,
    model_cache: Annotated[
        Path | None, typer.Option(help="docker runtime: model cache, mounted read-only.")
    ] = None,
    workdir: Annotated[Path, typer.Option(help="Checkouts, server logs and pid files.")] = Path(
        "isobench-work"
    ),
    server_command: Annotated[
        str, typer.Option(help="Run in each checkout; {python}, {port} and {model} are filled.")
    ] = "vllm serve {model} --host 127.0.0.1 --port {port}",
    task: Annotated[list[str] | None, typer.Option(help="Only these tasks (repeatable).")] = None,
    agent: Annotated[list[str] | None, typer.Option(help="Only these agents (repeatable).")] = None,
    arm: Annotated[list[Arm] | None, typer.Option(help="Only these arms (repeatable).")] = None,
    preset: Annotated[str, typer.Option(help="recommended or legacy")] = "recommended",
    repeats: Annotated[int | None, typer.Option(help="Benchmark passes per arm.")] = None,
    gpu: Annotated[
        list[str] | None, typer.Option(help="GPU ids of this host (repeatable).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Measure again what was measured before.")] = False,
    server_start_timeout: float = 300.0,
    benchmark_timeout: float = 900.0,
) -> None:
    """Measure every task's baseline, human and agent arms (process or docker runtime)."""
    from isobench.flows.pipeline import sweep
    from isobench.runtimes.docker import DockerRuntimeSpec
    from isobench.runtimes.process import ProcessRuntimeSpec

    if preset not in WORKLOAD_PRESETS:
        raise typer.BadParameter(f"--preset must be one of {', '.join(WORKLOAD_PRESETS)}")
    config = WORKLOAD_PRESETS[preset]
    if repeats is not None:
        config = config.model_copy(update={"repeats": repeats})
    url = _ready_url(ctx)
    common = {
        "workdir": str(workdir.resolve()),
        "server_command": shlex.split(server_command),
        "max_patch_bytes": _settings(ctx).max_patch_bytes,
    }
    spec: ProcessRuntimeSpec | DockerRuntimeSpec
    if runtime == "docker":
        if not image_template:
            raise typer.BadParameter("--image-template is required for the docker runtime")
        spec = DockerRuntimeSpec(
            image_template=image_template,
            source_root=source_root,
            device_ids=device,
            pin_slot_gpus=pin_gpus,
            model_cache=str(model_cache.resolve()) if model_cache else None,
            **common,
        )
    elif runtime == "process":
        if repo is None:
            raise typer.BadParameter("--repo is required for the process runtime")
        spec = ProcessRuntimeSpec(repo=str(repo.resolve()), **common)
    else:
        raise typer.BadParameter("--runtime must be process or docker")
    results = sweep(
        selection=Selection(tasks=task, agents=agent, arms=arm or list(Arm)),
        config=config,
        force=force,
        timeouts=Timeouts(server_start_s=server_start_timeout, benchmark_s=benchmark_timeout),
        runtime=spec,
        gpus=gpu,
        database_url=url,
    )
    reused = sum(1 for r in results if r["reused"])
    out.print(f"{len(results)} arms: {len(results) - reused} measured, {reused} reused")
    _print_tables(url, config.config_hash)


@app.command("deploy")
def deploy_command(
    prefect_file: Annotated[
        Path, typer.Option(help="The deployments, schedules and work pools.")
    ] = Path("deploy/prefect.yaml"),
    host: Annotated[
        str | None, typer.Option(help="The GPU host whose limits to create (default: this one).")
    ] = None,
    gpu: Annotated[
        list[str] | None,
        typer.Option(help="GPU ids of that host (repeatable; default: ISOBENCH_GPUS/nvidia-smi)."),
    ] = None,
) -> None:
    """Set up the Prefect server at PREFECT_API_URL: the work pools, one concurrency limit per
    GPU, and the deployments of deploy/prefect.yaml. Safe to run again."""
    from isobench.flows.deployments import DeployError, set_up
    from isobench.runtimes.host import host_gpus

    gpus = gpu or host_gpus()
    try:
        report = set_up(prefect_file, host=host, gpus=gpus)
    except DeployError as exc:
        err.print(f"[red]{exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    for name in report.pools_created:
        out.print(f"work pool {name}: created (process)")
    for name in report.pools_found:
        out.print(f"work pool {name}: exists")
    out.print(f"concurrency limits: {', '.join(report.limits)} (1 slot each)")
    out.print(f"automations: {', '.join(report.automations)}")
    out.print(f"deployments: {', '.join(report.deployments)}")


def main() -> None:
    app()
