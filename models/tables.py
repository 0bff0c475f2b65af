"""SQLAlchemy 2 tables. One row per task, agent, patch and attempt; metrics and log tails hang
off their attempt. The same metadata serves SQLite and PostgreSQL, and Alembic's migrations
are checked against it in the tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from isobench.models.domain import Arm, PatchStatus, RunSource
from isobench.models.metrics import Metrics
from isobench.models.outcomes import CrashCause, Outcome

# Deterministic constraint names keep Alembic diffs and SQLite batch migrations stable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_N_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, values: type) -> str:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({allowed})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class TaskRow(Base):
    __tablename__ = "tasks"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repo_url: Mapped[str] = mapped_column(String(255))
    human_commit: Mapped[str] = mapped_column(String(40), unique=True)
    parent_commit: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(255))
    benchmark_kind: Mapped[str | None] = mapped_column(String(16))
    benchmark_command: Mapped[str | None] = mapped_column(Text)
    benchmark_mode: Mapped[str | None] = mapped_column(String(64))
    gpus: Mapped[int] = mapped_column(Integer, default=1)
    notes: Mapped[str] = mapped_column(Text, default="")
    aliases: Mapped[list[str]] = mapped_column(default=list)
    problems: Mapped[list[str]] = mapped_column(default=list)
    warnings: Mapped[list[str]] = mapped_column(default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PatchRow(Base):
    __tablename__ = "patches"
    __table_args__ = (
        UniqueConstraint("agent_id", "task_id", "sha256"),
        CheckConstraint(_one_of("status", PatchStatus), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.task_id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    diff: Mapped[str | None] = mapped_column(Text)
    files_touched: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    flags: Mapped[list[str]] = mapped_column(default=list)
    source_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    agent: Mapped[AgentRow] = relationship()


class RunRow(Base):
    """One attempt. ``dedup_key`` is the attempt's identity, so that a re-import or a resumed
    sweep can never store it twice."""

    __tablename__ = "runs"
    __table_args__ = (
        Index(None, "task_id", "arm", "agent_id", "config_hash"),
        CheckConstraint(_one_of("arm", Arm), name="arm"),
        CheckConstraint(_one_of("outcome", Outcome), name="outcome"),
        CheckConstraint(f"cause IS NULL OR {_one_of('cause', CrashCause)}", name="cause"),
        CheckConstraint(_one_of("source", RunSource), name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(512), unique=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.task_id", ondelete="CASCADE"))
    arm: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    patch_id: Mapped[int | None] = mapped_column(ForeignKey("patches.id", ondelete="SET NULL"))
    config_hash: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32), index=True)
    cause: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)
    host: Mapped[str | None] = mapped_column(String(255))
    gpu: Mapped[str | None] = mapped_column(String(255))
    image_ref: Mapped[str | None] = mapped_column(String(512))
    image_digest: Mapped[str | None] = mapped_column(String(128))
    orchestration_run_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(255))
    client: Mapped[str | None] = mapped_column(String(255))
    flags: Mapped[list[str]] = mapped_column(default=list)
    step_timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    task: Mapped[TaskRow] = relationship()
    agent: Mapped[AgentRow | None] = relationship()
    metrics: Mapped[MetricsRow | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", uselist=False
    )
    logs: Mapped[list[RunLogRow]] = relationship(back_populates="run", cascade="all, delete-orphan")


def _metric_columns() -> list[Column[Any]]:
    # Typed columns come from the Metrics model, so the two can never disagree.
    return [
        Column(name, Integer if kind is int else Float, nullable=True)
        for name, kind in Metrics.typed_fields().items()
    ]


class MetricsRow(Base):
    __table__ = Table(
        "run_metrics",
        Base.metadata,
        Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        *_metric_columns(),
        Column("extras", JSON, nullable=False, default=dict),
    )

    run: Mapped[RunRow] = relationship(back_populates="metrics")


class RunLogRow(Base):
    """A bounded tail of one output stream of one attempt (server, client, build, runner)."""

    __tablename__ = "run_logs"
    __table_args__ = (UniqueConstraint("run_id", "stream"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    original_bytes: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)

    run: Mapped[RunRow] = relationship(back_populates="logs")
