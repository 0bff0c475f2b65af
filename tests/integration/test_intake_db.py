"""Intake end to end on SQLite and PostgreSQL: loading twice never duplicates, bad input
writes nothing, and imported results are classified by their logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from isobench.intake import load as intake
from isobench.intake.rows import InputError
from isobench.models.domain import PatchStatus
from isobench.models.tables import AgentRow, MetricsRow, PatchRow, RunLogRow, RunRow, TaskRow
from isobench.report.export import export_runs
from isobench.report.summary import summarize_runs
from isobench.store import migrate, repository
from isobench.store.engine import session_scope
from isobench.store.repository import ConflictError
from tests.conftest import EXAMPLES, FIXTURES

DATASET = FIXTURES / "datasets" / "vllm-perf-commits.jsonl"
LIMIT = 5 * 1024 * 1024
LOG_LIMIT = 64 * 1024


def _count(url: str, table: type) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _load_dataset(url: str) -> None:
    with session_scope(url) as session:
        intake.load_tasks(session=session, path=DATASET)


def test_tasks_load_twice_and_update(db_url: str, tmp_path: Path) -> None:
    with session_scope(db_url) as session:
        _tasks, first = intake.load_tasks(session=session, path=DATASET)
    assert (first.created, first.updated) == (96, 0)
    with session_scope(db_url) as session:
        _tasks, again = intake.load_tasks(session=session, path=DATASET)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 96)
    assert _count(db_url, TaskRow) == 96
    changed = tmp_path / "one.jsonl"
    row = json.loads(DATASET.read_text().splitlines()[0])
    row["model"] = "Qwen/Qwen2.5-14B-Instruct"
    changed.write_text(json.dumps(row) + "\n")
    with session_scope(db_url) as session:
        _tasks, update = intake.load_tasks(session=session, path=changed)
    assert update.updated == 1
    with session_scope(db_url) as session:
        stored = session.get(TaskRow, row["task_id"])
        assert stored is not None and stored.model == "Qwen/Qwen2.5-14B-Instruct"
        assert stored.extra["vllm_git"]["parent_matches"] is True


def test_bad_task_file_writes_nothing(db_url: str, tmp_path: Path) -> None:
    lines = DATASET.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    broken = json.loads(lines[5])
    del broken["human_commit"]
    bad.write_text("\n".join([*lines[:5], json.dumps(broken), *lines[6:]]) + "\n")
    with (
        pytest.raises(InputError, match=r"row 6, field 'human_commit'"),
        session_scope(db_url) as session,
    ):
        intake.load_tasks(session=session, path=bad)
    assert _count(db_url, TaskRow) == 0


def test_commit_held_by_another_task_is_a_conflict(db_url: str, tmp_path: Path) -> None:
    _load_dataset(db_url)
    row = json.loads(DATASET.read_text().splitlines()[0])
    row["task_id"] = "renamed"
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(row) + "\n")
    with (
        pytest.raises(ConflictError, match="already task 015069b0"),
        session_scope(db_url) as session,
    ):
        intake.load_tasks(session=session, path=other)
    assert _count(db_url, TaskRow) == 96


def test_patch_directory_twice_and_rejected_patches(db_url: str) -> None:
    _load_dataset(db_url)
    for expected_new in (4, 0):
        with session_scope(db_url) as session:
            summary = intake.load_patches(
                session=session, source=EXAMPLES / "patches", agent="a/b", max_bytes=LIMIT
            )
        assert summary.created == expected_new
    assert _count(db_url, PatchRow) == 4
    with session_scope(db_url) as session:
        status = {p.task_id: (p.status, p.reason) for p in session.scalars(select(PatchRow))}
    assert status["015069b0"][0] == PatchStatus.OK
    assert status["30172b49"] == (PatchStatus.EMPTY, "patch is empty")
    assert status["22d33bac"][0] == PatchStatus.NOT_UNIFIED


def test_patches_by_alias_commit_prefix_and_a_20mb_patch(db_url: str, tmp_path: Path) -> None:
    _load_dataset(db_url)
    root = tmp_path / "run"
    (root / "vllm_core-0005").mkdir(parents=True)
    (root / "vllm_core-0005" / "model_patch.diff").write_text(
        "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    )
    big = b"--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+" + b"b" * (20 * 1024 * 1024) + b"\n"
    (root / "0d243f2a54fb.patch").write_bytes(big)
    with session_scope(db_url) as session:
        summary = intake.load_patches(session=session, source=root, agent="x", max_bytes=LIMIT)
    tasks = {p.patch.task_id: p.patch for p in summary.patches}
    with session_scope(db_url) as session:
        aliased = repository.resolve_task(session=session, key="vllm_core-0005")
    assert [t.task_id for t in aliased] == list(set(tasks) - {"0d243f2a"})
    large = tasks["0d243f2a"]
    assert large.status is PatchStatus.TOO_LARGE and large.diff is None
    with session_scope(db_url) as session:
        row = session.scalar(select(PatchRow).where(PatchRow.task_id == "0d243f2a"))
        assert row is not None
        assert row.size_bytes == len(big) and row.diff is None and "over the limit" in row.reason


def test_unknown_task_in_patch_path_writes_nothing(db_url: str, tmp_path: Path) -> None:
    _load_dataset(db_url)
    (tmp_path / "015069b0.diff").write_text("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")
    (tmp_path / "deadbeef.diff").write_text("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")
    with (
        pytest.raises(InputError, match=r"deadbeef\.diff: unknown task"),
        session_scope(db_url) as session,
    ):
        intake.load_patches(session=session, source=tmp_path, agent="x", max_bytes=LIMIT)
    assert _count(db_url, PatchRow) == 0
    assert _count(db_url, AgentRow) == 0


def test_patch_jsonl_rows(db_url: str, tmp_path: Path) -> None:
    _load_dataset(db_url)
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    path = tmp_path / "p.jsonl"
    rows = [
        {"task": "015069b0", "agent": "trae/gpt-5", "patch": diff},
        {"task": "0d243f2a54fbd1c56da8a571f0899c30b6aba5d9", "agent": "trae/gpt-5", "patch": ""},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with session_scope(db_url) as session:
        summary = intake.load_patches(session=session, source=path, agent=None, max_bytes=LIMIT)
    assert [p.patch.status for p in summary.patches] == [PatchStatus.OK, PatchStatus.EMPTY]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"task": "nope", "agent": "x", "patch": diff})
        + "\n"
        + json.dumps({"agent": "x", "patch": diff})
        + "\n{broken\n"
        + json.dumps(rows[0])
        + "\n"
        + json.dumps(rows[0])
        + "\n"
    )
    with pytest.raises(InputError) as exc, session_scope(db_url) as session:
        intake.load_patches(session=session, source=bad, agent=None, max_bytes=LIMIT)
    messages = [str(e) for e in exc.value.errors]
    assert messages == [
        f"{bad}, row 1, field 'task': unknown task (nope)",
        f"{bad}, row 2, field 'task': missing",
        f"{bad}, row 3: malformed JSON: Expecting property name enclosed in double quotes",
        f"{bad}, row 5, field 'task': duplicate of row 4 for trae/gpt-5/015069b0",
    ]
    assert _count(db_url, PatchRow) == 2


def _import(
    url: str, root: Path, agent: str = "codex_gpt5", log_limit: int = LOG_LIMIT, **kw: bool
) -> intake.ImportSummary:
    with session_scope(url) as session:
        return intake.import_results(
            session=session, root=root, agent=agent, log_limit=log_limit, **kw
        )


def test_long_logs_keep_their_tail_and_say_so(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "res"
    root.mkdir()
    shutil.copy(FIXTURES / "iso-logs" / "codex_gpt5__89a84b0b_agent_result.json", root)
    raw = json.loads((root / "codex_gpt5__89a84b0b_agent_result.json").read_text())["raw_output"]
    _import(db_url, root, log_limit=1024)
    with session_scope(db_url) as session:
        (log,) = session.scalars(select(RunLogRow)).all()
        run = session.scalars(select(RunRow)).one()
    assert log.truncated and log.original_bytes == len(raw.encode())
    assert len(log.text.encode()) <= 1024 and raw.endswith(log.text)
    # The outcome was read from the whole log, not the tail.
    assert (run.outcome, run.cause) == ("server_crashed", "import_error")


def test_import_real_records_is_idempotent_and_keeps_evidence(db_url: str, tmp_path: Path) -> None:
    _load_dataset(db_url)
    root = tmp_path / "res"
    root.mkdir()
    for path in (FIXTURES / "iso-logs").glob("*_result.json"):
        shutil.copy(path, root)
    (root / "notes.json").write_text("{}")  # not a result file: ignored and said so
    first = _import(db_url, root)
    assert (first.files, first.imported, first.already) == (9, 9, 0)
    assert first.skipped_files == [str(root / "notes.json")]
    second = _import(db_url, root)
    assert (second.imported, second.already) == (0, 9)
    assert _count(db_url, RunRow) == 9
    assert _count(db_url, RunLogRow) == 9
    with session_scope(db_url) as session:
        runs = {r.task_id: r for r in session.scalars(select(RunRow))}
        infra = runs["0d243f2a"]
        assert infra.outcome == "infra_error" and "manifest unknown" in infra.evidence
        assert "status_disagrees" in infra.flags
        assert infra.image_ref == "anonymous/vllm-baseline:baseline-88f6ba3281f7"
        assert infra.image_digest is None  # the pull failed: no digest to record
        crash = runs["89a84b0b"]
        assert (crash.outcome, crash.cause) == ("server_crashed", "import_error")
        assert crash.image_ref == "anonymous/vllm-baseline:baseline-084a01fd3544"
        assert crash.image_digest == (
            "sha256:05c1d3bb759c96c31cf5b8a0707b4d6cc6d807aaf89058b64a410a72d3dbb8e4"
        )
        assert {"partial_apply", "touches_harness_file"} <= set(crash.flags)
        ok = runs["30172b49"]
        assert ok.metrics is not None and ok.metrics.p99_tpot_ms == 30.37
        assert ok.metrics.total_token_throughput == 14730.94
        assert "model_mismatch" in runs["2deb029d"].flags


def _make_93(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """93 result files for 93 tasks of the dataset, each a real or example record moved onto
    that task, so their classes are known."""
    from tests.unit.test_classify import CASES, EXAMPLE_OUTCOMES

    templates: list[tuple[dict, str]] = []
    for case in CASES:
        if case["file"].endswith(".json"):
            record = json.loads((FIXTURES / "iso-logs" / case["file"]).read_text())
            templates.append((record, case["failure_class"]))
    for name, (outcome, _cause) in EXAMPLE_OUTCOMES.items():
        record = json.loads((EXAMPLES / "results" / f"{name}_result.json").read_text())
        templates.append((record, outcome.value))
    tasks = [json.loads(line) for line in DATASET.read_text().splitlines()][:93]
    root = tmp_path / "ninety-three"
    root.mkdir()
    expected: dict[str, int] = {}
    for i, task in enumerate(tasks):
        record, outcome = templates[i % len(templates)]
        record = {
            **record,
            "human_commit": task["task_id"],
            "human_commit_full": task["human_commit"],
            "parent_commit": task["parent_commit"],
            "timestamp": f"2026-01-{1 + i // 24:02d} {i % 24:02d}:00:00",
        }
        (root / f"{task['task_id']}_agent_result.json").write_text(json.dumps(record))
        expected[outcome] = expected.get(outcome, 0) + 1
    return root, expected


def test_import_93_files_twice_leaves_93_runs(db_url: str, tmp_path: Path) -> None:
    _load_dataset(db_url)
    root, expected = _make_93(tmp_path)
    assert _import(db_url, root).imported == 93
    assert _import(db_url, root).already == 93
    assert _count(db_url, RunRow) == 93
    with session_scope(db_url) as session:
        latest = repository.latest_runs(session=session)
        (summary,) = summarize_runs(latest)
    assert summary.total == 93
    assert {k: v for k, v in summary.breakdown.items() if v} == expected
    assert summary.successful == expected["success"]


def test_bad_result_file_writes_nothing_unless_keep_going(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "res"
    shutil.copytree(EXAMPLES / "results", root)
    (root / "015069b0_agent_result.json").write_text('{"human_commit": "015069b0", ')
    record = json.loads((root / "015069b0_human_result.json").read_text())
    del record["raw_output"]
    (root / "015069b0_human_result.json").write_text(json.dumps(record))
    with pytest.raises(InputError) as exc:
        _import(db_url, root)
    messages = [str(e) for e in exc.value.errors]
    assert any("015069b0_agent_result.json: malformed JSON" in m for m in messages)
    assert f"{root / '015069b0_human_result.json'}, field 'raw_output': Field required" in messages
    assert _count(db_url, RunRow) == 0 and _count(db_url, TaskRow) == 0
    summary = _import(db_url, root, keep_going=True)
    assert summary.imported == 14 and len(summary.rejected) == 2
    # Tasks unknown to the database are created from the records' own full commits.
    assert sorted(summary.tasks_created) == sorted(
        {p.name[:8] for p in (EXAMPLES / "results").glob("*.json")}
    )


def test_retried_attempt_replaces_the_earlier_in_latest(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "r1"
    root.mkdir()
    failed = json.loads((EXAMPLES / "results" / "22d33bac_baseline_result.json").read_text())
    (root / "22d33bac_baseline_result.json").write_text(json.dumps(failed))
    _import(db_url, root)
    retry = json.loads((EXAMPLES / "results" / "015069b0_baseline_result.json").read_text())
    retry.update({k: failed[k] for k in ("human_commit", "human_commit_full", "parent_commit")})
    retry["timestamp"] = "2026-02-01 00:00:00"
    (root / "22d33bac_baseline_result.json").write_text(json.dumps(retry))
    _import(db_url, root)
    with session_scope(db_url) as session:
        attempts = sorted((r.attempt, r.outcome) for r in session.scalars(select(RunRow)))
        latest = repository.latest_runs(session=session)
    assert attempts == [(1, "server_timeout"), (2, "success")]
    assert [(r.task_id, r.outcome) for r in latest] == [("22d33bac", "success")]


def test_export_then_import_round_trips(db_url: str, tmp_path: Path, sqlite_url: str) -> None:
    _import(db_url, EXAMPLES / "results", agent="example-agent")
    with session_scope(db_url) as session:
        written = export_runs(repository.latest_runs(session=session), tmp_path / "out", flat=False)
    assert len(written) == 16
    agent_file = tmp_path / "out" / "example-agent" / "015069b0_agent_result.json"
    exported = json.loads(agent_file.read_text())
    assert exported["status"] == "success" and exported["outcome"] == "success"
    assert exported["metrics"]["ttft_p99_ms"] == 88.02  # a latency figure the source lacked
    assert exported["metrics"]["request_throughput_req_s"] == 0.99
    crash = json.loads(
        (tmp_path / "out" / "example-agent" / "30172b49_agent_result.json").read_text()
    )
    assert (crash["status"], crash["cause"]) == ("error", "cuda_oom")
    # A second database reading the export back classifies every file the same way.
    migrate.upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        intake.import_results(
            session=session, root=tmp_path / "out", agent="example-agent", log_limit=LOG_LIMIT
        )

    def outcomes(url: str) -> list[tuple[str, str, str, str]]:
        with session_scope(url) as session:
            latest = repository.latest_runs(session=session)
            return sorted((r.task_id, r.arm, r.outcome, r.cause or "") for r in latest)

    assert outcomes(sqlite_url) == outcomes(db_url)
    assert _count(sqlite_url, MetricsRow) == _count(db_url, MetricsRow)
