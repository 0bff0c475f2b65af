"""Domain models: config hashing, validation, outcome rules, metric names and settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from isobench.intake.legacy import from_legacy_key, to_legacy_key
from isobench.models import BenchmarkConfig, CrashCause, Metrics, Outcome, OutcomeRecord, Task
from isobench.models.metrics import latency_key, percentile_key
from isobench.models.settings import Settings, normalize_database_url

SHA = "015069b01741e9ecb9e604c7fe87fbdfc306ebe5"


def test_config_hash_is_stable_and_ignores_repeats() -> None:
    a = BenchmarkConfig()
    assert a.config_hash == BenchmarkConfig().config_hash
    assert a.config_hash == BenchmarkConfig(repeats=7).config_hash
    assert a.config_hash != BenchmarkConfig(request_rate=2.0).config_hash
    assert a.config_hash != BenchmarkConfig(seed=1).config_hash
    # Percentile order and duplicates do not make another measurement.
    assert (
        BenchmarkConfig(percentiles=(99, 50, 90, 99)).config_hash
        == BenchmarkConfig(percentiles=(50, 90, 99)).config_hash
    )


def test_config_hash_known_value() -> None:
    # Pinned: if this changes, stored baseline and human results stop being reused.
    assert BenchmarkConfig().config_hash == "84ef8a9a92526259"


@pytest.mark.parametrize("bad", [(0,), (100,), (-1,)])
def test_config_rejects_bad_percentiles(bad: tuple[float, ...]) -> None:
    with pytest.raises(ValidationError):
        BenchmarkConfig(percentiles=bad)


def test_task_needs_full_lowercase_sha() -> None:
    assert Task(task_id="x", human_commit=SHA.upper()).human_commit == SHA
    with pytest.raises(ValidationError, match="human_commit"):
        Task(task_id="x", human_commit=SHA[:8])


def test_cause_only_for_server_crashed() -> None:
    OutcomeRecord(outcome=Outcome.SERVER_CRASHED, cause=CrashCause.CUDA_OOM)
    with pytest.raises(ValidationError):
        OutcomeRecord(outcome=Outcome.SUCCESS, cause=CrashCause.OTHER)
    with pytest.raises(ValidationError):
        OutcomeRecord(outcome=Outcome.SERVER_CRASHED)


def test_only_infra_error_is_retryable() -> None:
    assert [o for o in Outcome if o.is_retryable] == [Outcome.INFRA_ERROR]
    assert {o for o in Outcome if o.is_timeout} == {
        Outcome.SERVER_TIMEOUT,
        Outcome.BENCHMARK_TIMEOUT,
    }


def test_metrics_split_typed_and_extras() -> None:
    m = Metrics.from_flat(
        {"p99_itl_ms": 3.5, "p95_ttft_ms": 80.0, "completed": 100.0, "label": "x", "ok": True}
    )
    assert m.p99_itl_ms == 3.5
    assert m.completed == 100 and isinstance(m.completed, int)
    assert m.extras == {"p95_ttft_ms": 80.0}
    assert m.flat() == {"p99_itl_ms": 3.5, "completed": 100, "p95_ttft_ms": 80.0}
    assert Metrics().is_empty()


def test_metrics_merge_prefers_own_values() -> None:
    merged = Metrics(mean_ttft_ms=1.0).merged(Metrics(mean_ttft_ms=2.0, mean_itl_ms=3.0))
    assert merged.mean_ttft_ms == 1.0 and merged.mean_itl_ms == 3.0


def test_every_latency_statistic_has_a_typed_field() -> None:
    typed = Metrics.typed_fields()
    for metric in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "std", "p90", "p99"):
            assert latency_key(stat, metric) in typed
    assert percentile_key(99.9, "itl") == "p99.9_itl_ms"
    assert percentile_key(90, "ttft") == "p90_ttft_ms"
    with pytest.raises(ValueError):
        latency_key("mean", "nope")


@pytest.mark.parametrize(
    ("legacy", "modern"),
    [
        ("ttft_mean_ms", "mean_ttft_ms"),
        ("itl_p99_ms", "p99_itl_ms"),
        ("e2el_p99.9_ms", "p99.9_e2el_ms"),
        ("request_throughput_req_s", "request_throughput"),
        ("output_token_throughput_tok_s", "output_throughput"),
        ("total_token_throughput_tok_s", "total_token_throughput"),
        ("prefix_cache_cost_time_s", "prefix_cache_cost_time_s"),
    ],
)
def test_legacy_metric_names_round_trip(legacy: str, modern: str) -> None:
    assert from_legacy_key(legacy) == modern
    assert to_legacy_key(modern) == legacy


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_url_uses_psycopg3(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOBENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/isobench")
    monkeypatch.setenv("ISOBENCH_MAX_PATCH_BYTES", "1234")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1/isobench"
    assert settings.max_patch_bytes == 1234
