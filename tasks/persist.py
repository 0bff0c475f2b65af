"""The persist step: each attempt is written as it ends, in its own transaction, so a crash of
the orchestrator loses nothing that finished."""

from __future__ import annotations

from isobench.models.domain import RunRecord
from isobench.store import repository
from isobench.store.engine import session_scope


def persist_attempt(db_url: str, record: RunRecord, *, log_tail_bytes: int) -> int:
    """Store ``record`` as the next attempt of its measurement; returns the run id."""
    with session_scope(db_url) as session:
        agent = (
            repository.ensure_agent(session=session, name=record.agent) if record.agent else None
        )
        attempt = 1 + repository.count_attempts(
            session=session,
            task_id=record.task_id,
            arm=record.arm.value,
            agent_id=agent.id if agent else None,
            config_hash=record.config_hash,
        )
        key = ":".join(
            [
                "run",
                record.task_id,
                record.arm.value,
                record.agent or "-",
                record.config_hash,
                record.image_digest or "-",
                str(attempt),
            ]
        )
        row, _created = repository.add_run(
            session=session,
            record=record.model_copy(update={"attempt": attempt, "dedup_key": key}),
            log_tail_bytes=log_tail_bytes,
        )
        return row.id
