"""The Clerk convergence gauges (DESIGN.md section 9), read from `clerk_sync_state`: the jobs
run in worker processes and record their results there, and the web's `/metrics` is the one
place Prometheus scrapes for what the database says.

A job that never ran has no series (an instance without CLERK_SECRET_KEY never runs them, and
its alerts must stay quiet).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.clerk_sync import ClerkSyncState

DRIFT_KINDS: Final = ("missing", "stale", "extra")

DRIFT = Gauge(
    "cpn_clerk_drift_users",
    "Users the last reconcile found out of step with Clerk, by kind (missing: in Clerk, not in "
    "the database; stale: in both, the database older; extra: in the database, gone from Clerk).",
    ["kind"],
    multiprocess_mode="mostrecent",
)
LAST_SYNC = Gauge(
    "cpn_clerk_last_sync_timestamp_seconds",
    "When each Clerk convergence job (backfill, sync_recent, reconcile) last succeeded.",
    ["job"],
    multiprocess_mode="mostrecent",
)

_STATE = select(
    ClerkSyncState.job,
    func.extract("epoch", ClerkSyncState.last_success_at),
    ClerkSyncState.last_counts,
).where(ClerkSyncState.last_success_at.is_not(None))


async def refresh(connection: AsyncConnection) -> None:
    """Set the gauges from the jobs' rows (in the scrape's own connection)."""
    for job, succeeded_at, counts in await connection.execute(_STATE):
        LAST_SYNC.labels(job=job).set(float(succeeded_at))
        if job == "reconcile":
            for kind in DRIFT_KINDS:
                DRIFT.labels(kind=kind).set(int((counts or {}).get(kind, 0)))
