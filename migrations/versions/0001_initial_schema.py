"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 13:28:31.473571
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents__name")),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("repo_url", sa.String(length=255), nullable=False),
        sa.Column("human_commit", sa.String(length=40), nullable=False),
        sa.Column("parent_commit", sa.String(length=40), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("benchmark_kind", sa.String(length=16), nullable=True),
        sa.Column("benchmark_command", sa.Text(), nullable=True),
        sa.Column("benchmark_mode", sa.String(length=64), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("human_commit", name=op.f("uq_tasks__human_commit")),
    )
    op.create_table(
        "patches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("diff", sa.Text(), nullable=True),
        sa.Column("files_touched", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'empty', 'binary', 'not_unified', 'too_large')",
            name=op.f("ck_patches__status"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_patches__agent_id__agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.task_id"],
            name=op.f("fk_patches__task_id__tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patches")),
        sa.UniqueConstraint(
            "agent_id", "task_id", "sha256", name=op.f("uq_patches__agent_id_task_id_sha256")
        ),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(length=512), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("patch_id", sa.Integer(), nullable=True),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("gpu", sa.String(length=255), nullable=True),
        sa.Column("image_ref", sa.String(length=512), nullable=True),
        sa.Column("image_digest", sa.String(length=128), nullable=True),
        sa.Column("orchestration_run_id", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("client", sa.String(length=255), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("step_timings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("arm IN ('baseline', 'human', 'agent')", name=op.f("ck_runs__arm")),
        sa.CheckConstraint(
            "cause IS NULL OR cause IN ('import_error', 'syntax_error', 'cuda_oom', 'other')",
            name=op.f("ck_runs__cause"),
        ),
        sa.CheckConstraint(
            "outcome IN ('success', 'patch_failed', 'build_failed', 'server_crashed', 'server_timeout', 'benchmark_failed', 'no_metrics', 'benchmark_timeout', 'infra_error', 'skipped')",
            name=op.f("ck_runs__outcome"),
        ),
        sa.CheckConstraint("source IN ('pipeline', 'import')", name=op.f("ck_runs__source")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_runs__agent_id__agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["patch_id"],
            ["patches.id"],
            name=op.f("fk_runs__patch_id__patches"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.task_id"], name=op.f("fk_runs__task_id__tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_runs__dedup_key")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs__outcome"), ["outcome"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_runs__task_id_arm_agent_id_config_hash"),
            ["task_id", "arm", "agent_id", "config_hash"],
            unique=False,
        )

    op.create_table(
        "run_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("original_bytes", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_logs__run_id__runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_logs")),
        sa.UniqueConstraint("run_id", "stream", name=op.f("uq_run_logs__run_id_stream")),
    )
    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=True),
        sa.Column("failed", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("total_input_tokens", sa.Integer(), nullable=True),
        sa.Column("total_output_tokens", sa.Integer(), nullable=True),
        sa.Column("request_throughput", sa.Float(), nullable=True),
        sa.Column("request_goodput", sa.Float(), nullable=True),
        sa.Column("output_throughput", sa.Float(), nullable=True),
        sa.Column("total_token_throughput", sa.Float(), nullable=True),
        sa.Column("mean_ttft_ms", sa.Float(), nullable=True),
        sa.Column("median_ttft_ms", sa.Float(), nullable=True),
        sa.Column("std_ttft_ms", sa.Float(), nullable=True),
        sa.Column("p90_ttft_ms", sa.Float(), nullable=True),
        sa.Column("p99_ttft_ms", sa.Float(), nullable=True),
        sa.Column("mean_tpot_ms", sa.Float(), nullable=True),
        sa.Column("median_tpot_ms", sa.Float(), nullable=True),
        sa.Column("std_tpot_ms", sa.Float(), nullable=True),
        sa.Column("p90_tpot_ms", sa.Float(), nullable=True),
        sa.Column("p99_tpot_ms", sa.Float(), nullable=True),
        sa.Column("mean_itl_ms", sa.Float(), nullable=True),
        sa.Column("median_itl_ms", sa.Float(), nullable=True),
        sa.Column("std_itl_ms", sa.Float(), nullable=True),
        sa.Column("p90_itl_ms", sa.Float(), nullable=True),
        sa.Column("p99_itl_ms", sa.Float(), nullable=True),
        sa.Column("mean_e2el_ms", sa.Float(), nullable=True),
        sa.Column("median_e2el_ms", sa.Float(), nullable=True),
        sa.Column("std_e2el_ms", sa.Float(), nullable=True),
        sa.Column("p90_e2el_ms", sa.Float(), nullable=True),
        sa.Column("p99_e2el_ms", sa.Float(), nullable=True),
        sa.Column("requests_per_second", sa.Float(), nullable=True),
        sa.Column("tokens_per_second", sa.Float(), nullable=True),
        sa.Column("output_tokens_per_second", sa.Float(), nullable=True),
        sa.Column("avg_latency", sa.Float(), nullable=True),
        sa.Column("p50_latency", sa.Float(), nullable=True),
        sa.Column("p90_latency", sa.Float(), nullable=True),
        sa.Column("p99_latency", sa.Float(), nullable=True),
        sa.Column("extras", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_metrics__run_id__runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_metrics")),
    )


def downgrade() -> None:
    op.drop_table("run_metrics")
    op.drop_table("run_logs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs__task_id_arm_agent_id_config_hash"))
        batch_op.drop_index(batch_op.f("ix_runs__outcome"))

    op.drop_table("runs")
    op.drop_table("patches")
    op.drop_table("tasks")
    op.drop_table("agents")
