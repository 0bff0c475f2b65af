"""Task lists: the real dataset as it is, and bad rows named by file, row and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isobench.intake.rows import InputError
from isobench.intake.task_list import load_task_file
from tests.conftest import FIXTURES

DATASET = FIXTURES / "datasets" / "vllm-perf-commits.jsonl"
# Task lists in the project's shared folder (beside the clone) must load as they are; where
# that folder is absent, the copies under tests/fixtures stand in.
SHARED_DATASETS = sorted(
    (Path(__file__).resolve().parents[3] / "shared" / "datasets").glob("*.jsonl")
) or sorted((FIXTURES / "datasets").glob("*.jsonl"))
SHA_A = "015069b01741e9ecb9e604c7fe87fbdfc306ebe5"
SHA_B = "fbefc8a78d22b20eac042c586805c7dcbfc66b1c"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_real_dataset_loads_and_names_rows_that_cannot_run() -> None:
    tasks = {t.task_id: t for t in load_task_file(DATASET)}
    assert len(tasks) == 96
    cannot = {tid for tid, t in tasks.items() if not t.runnable}
    # The dataset README's gaps: null models (5), 'unknown' model, null parent and command
    # (3127e975), a template command, and 8 commands whose --model differs from the model.
    assert {"3127e975", "4fb56914", "526de822", "ac45c44d", "baeded25", "98f47f2a"} <= cannot
    assert "no parent commit: the baseline arm cannot be built" in tasks["3127e975"].problems
    assert "no benchmark command" in tasks["3127e975"].problems
    assert any("template" in p and "INPUT_LEN" in p for p in tasks["526de822"].problems)
    assert tasks["98f47f2a"].problems == ["model is 'unknown'"]
    assert any("local path" in p for p in tasks["fa63e710"].problems)
    mismatched = [t for t in tasks.values() if any("but the task's model" in p for p in t.problems)]
    assert len(mismatched) == 7  # + fa63e710's local path = the README's 8
    assert any(t.task_id == "61b8cea3" for t in mismatched)
    assert len(cannot) == 14
    # Contradictions that do not stop a run are kept as warnings.
    assert any("benchmark_mode 'serving'" in w for w in tasks["0ec82edd"].warnings)
    assert sum(any("'standalone'" in w for w in t.warnings) for t in tasks.values()) == 6
    # GPU needs come from the command's tensor parallelism.
    assert {tasks[t].gpus for t in ("21d93c14", "dae68969", "fb0acb6c")} == {8}
    # Patch aliases of the second source (vllm_core-NNNN) are kept.
    assert sum(bool(t.aliases) for t in tasks.values()) == 38
    assert tasks["015069b0"].extra["vllm_git"]["parent_matches"] is True


@pytest.mark.parametrize("path", SHARED_DATASETS, ids=lambda p: p.name)
def test_shared_task_lists_load_as_they_are(path: Path) -> None:
    assert load_task_file(path)


def test_malformed_jsonl_names_the_row(tmp_path: Path) -> None:
    good = json.dumps({"task_id": "a", "human_commit": SHA_A})
    path = _write(tmp_path, "t.jsonl", good + "\n{not json\n")
    with pytest.raises(InputError) as exc:
        load_task_file(path)
    assert str(exc.value).startswith(f"{path}, row 2: malformed JSON")


def test_malformed_json_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.json", '[{"task_id": "a",]')
    with pytest.raises(InputError, match=r"t\.json: malformed JSON at line 1"):
        load_task_file(path)


def test_missing_and_bad_fields_are_all_reported(tmp_path: Path) -> None:
    rows = [
        {"task_id": "a", "model": "m"},  # no commit at all
        {"task_id": "b", "human_commit": "015069b0"},  # short sha
        {"task_id": "c", "human_commit": SHA_A, "parent_commit": "zz"},
        {"task_id": "d", "human_commit": SHA_B, "gpus": 0},
    ]
    path = _write(tmp_path, "t.json", json.dumps(rows))
    with pytest.raises(InputError) as exc:
        load_task_file(path)
    text = str(exc.value)
    assert f"{path}, row 1, field 'human_commit'" in text
    assert f"{path}, row 2, field 'human_commit'" in text
    assert f"{path}, row 3, field 'parent_commit'" in text
    assert f"{path}, row 4, field 'gpus'" in text
    assert len(exc.value.errors) == 4


def test_duplicate_rows(tmp_path: Path) -> None:
    rows = [
        {"task_id": "a", "human_commit": SHA_A},
        {"task_id": "a", "human_commit": SHA_B},
        {"task_id": "c", "human_commit": SHA_A},
    ]
    path = _write(tmp_path, "t.json", json.dumps({"tasks": rows}))
    with pytest.raises(InputError) as exc:
        load_task_file(path)
    assert [str(e) for e in exc.value.errors] == [
        f"{path}, row 2, field 'task_id': duplicate of row 1 (a)",
        f"{path}, row 3, field 'human_commit': duplicate of row 1 ({SHA_A})",
    ]


def test_csv_task_list(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "t.csv",
        "task_id,human_commit,parent_commit,model,perf_command,gpus\n"
        f"x1,{SHA_A},{SHA_B},Qwen/Qwen2.5-7B-Instruct,"
        '"vllm bench serve --model Qwen/Qwen2.5-7B-Instruct -tp 2",\n',
    )
    (task,) = load_task_file(path)
    assert task.runnable
    assert task.gpus == 2
    assert task.benchmark.kind == "serving"


def test_task_id_defaults_to_short_commit(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.jsonl", json.dumps({"human_commit": SHA_A}) + "\n")
    (task,) = load_task_file(path)
    assert task.task_id == "015069b0"
    assert not task.runnable  # no parent, model or command


def test_unknown_format_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unknown format '\.yaml'"):
        load_task_file(_write(tmp_path, "t.yaml", "a: 1"))
    with pytest.raises(InputError, match="no tasks in file"):
        load_task_file(_write(tmp_path, "t.jsonl", "\n"))
    with pytest.raises(InputError, match="expected a list of objects"):
        load_task_file(_write(tmp_path, "t.json", '"just a string"'))
