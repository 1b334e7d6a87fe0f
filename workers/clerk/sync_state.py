"""Where each Clerk convergence job stands, in `clerk_sync_state` (`db.clerk_sync`): the
backfill's cursor, the recent sync's watermark, and each job's last success and counts (what
the web's `/metrics` reports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.clerk_sync import ClerkSyncState

Job = Literal["backfill", "sync_recent", "reconcile"]
JOBS: Final[tuple[Job, ...]] = ("backfill", "sync_recent", "reconcile")


def read(session: Session, job: Job) -> ClerkSyncState | None:
    return session.scalar(select(ClerkSyncState).where(ClerkSyncState.job == job))


def _upsert(session: Session, job: Job, values: Mapping[str, Any]) -> None:
    statement = insert(ClerkSyncState).values(job=job, **values)
    session.execute(
        statement.on_conflict_do_update(index_elements=[ClerkSyncState.job], set_=dict(values))
    )


def started(session: Session, job: Job) -> None:
    _upsert(session, job, {"started_at": func.now()})


def save_cursor(session: Session, job: Job, cursor: str | None) -> None:
    """In the transaction that wrote the page: the cursor never runs ahead of the data."""
    _upsert(session, job, {"cursor": cursor})


def succeeded(
    session: Session, job: Job, counts: Mapping[str, int], *, watermark_ms: int | None = None
) -> None:
    """The job finished: its counts, its time, and a cleared cursor (the next backfill walks
    everything again)."""
    values: dict[str, Any] = {
        "cursor": None,
        "last_success_at": func.now(),
        "last_counts": dict(counts),
    }
    if watermark_ms is not None:
        values["watermark_ms"] = watermark_ms
    _upsert(session, job, values)
