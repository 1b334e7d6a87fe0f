"""One run of a stored first-request sync call (`me_sync_requests`), in one transaction under
the user's advisory lock: make sure the user is in the database (fetched from Clerk by id when
the row is missing and CLERK_SECRET_KEY is set; else wait for the webhook, up to
SYNC_WAIT_SECONDS after the call), then apply the onboarding data through the one migration
path the webhook uses (`migrate_session_data`, once per `(clerk_id, sessionDataId)`).

The run covers every call of its row stored before it took the lock (`applied = requested`),
records its outcome on the row for the waiting request, and erases the onboarding data it used.
A tombstoned id is never re-created; an id Clerk answers 404 for writes nothing but the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from cpn_sync.clerk import ClerkUser
from cpn_sync.logs import get_logger
from cpn_sync.settings import get_settings
from cpn_sync.task_contract import CPN_RECOMPUTE_USER
from db.me_sync import MeSyncRequest
from workers.clerk.errors import ClerkAPIError
from workers.clerk.snapshots import apply_snapshot
from workers.core.locks import lock_user
from workers.core.unit_of_work import UnitOfWork, unit_of_work
from workers.cpn.requests import request_recompute
from workers.me_sync.clerk_fetch import clerk_client, fetch_user
from workers.onboarding.data_migration import migrate_session_data, session_data_id_of
from workers.onboarding.validation import read_onboarding
from workers.users.user_events import find_user_id, is_deleted

log = get_logger(__name__)

_NOTIFY = text("SELECT pg_notify('me_sync_applied', :id)")
_READ = text(
    "SELECT clerk_id, requested, applied, completed_by, onboarding::text AS onboarding,"
    " extract(epoch FROM clock_timestamp() - requested_at) AS age"
    " FROM me_sync_requests WHERE id = :id"
)


@dataclass(frozen=True)
class WaitForUser:
    """The user is not stored yet and cannot be fetched: run again after `seconds`."""

    seconds: float


def run_call(request_id: int, retries: int = 0) -> WaitForUser | None:
    """Work the call; a `WaitForUser` when the task should run again later."""
    with unit_of_work() as work:
        session = work.session
        row = session.execute(_READ, {"id": request_id}).one_or_none()
        if row is None or row.applied >= row.requested:
            return None  # erased with its user, or an earlier run covered it
        lock_user(session, row.clerk_id)
        row = session.execute(_READ, {"id": request_id}).one_or_none()  # as of the lock
        if row is None or row.applied >= row.requested:
            return None
        return _run(work, request_id, row, retries)


def _run(work: UnitOfWork, request_id: int, row: Any, retries: int) -> WaitForUser | None:
    finish = _Finisher(work.session, request_id, row.requested)
    stored = _ensure_user(work, request_id, row, retries, finish)
    if not isinstance(stored, _Stored):
        return stored
    if row.onboarding is None:
        finish("done", user_id=stored.user_id, onboarding_status="none")
        return None
    outcome = migrate_session_data(
        work.session,
        clerk_id=row.clerk_id,
        user_id=stored.user_id,
        onboarding=read_onboarding(row.onboarding),
    )
    status = outcome.status
    if status == "skipped" and outcome.session_data_id == stored.migrated_now:
        status = "completed"  # the same data, migrated from Clerk's snapshot by this very run
    completed_by = row.completed_by
    if status == "completed":
        completed_by = row.applied + 1  # the first call this run covers is the one that did it
    if outcome.status == "completed":
        found = stored.user_id
        work.after_commit_call(CPN_RECOMPUTE_USER, lambda: request_recompute(found))
    errors = [{"field": error.field, "message": error.reason} for error in outcome.errors]
    finish(
        "done",
        user_id=stored.user_id,
        onboarding_status=status,
        errors=errors or None,
        completed_by=completed_by,
        erase=True,
    )
    return None


@dataclass(frozen=True)
class _Stored:
    user_id: int
    # The sessionDataId whose migration Clerk's snapshot completed in this run, if any.
    migrated_now: str | None = None


def _ensure_user(
    work: UnitOfWork, request_id: int, row: Any, retries: int, finish: _Finisher
) -> _Stored | WaitForUser | None:
    """The stored user; else the run is finished (None) or must look again (`WaitForUser`)."""
    session = work.session
    clerk_id: str = row.clerk_id
    if is_deleted(session, clerk_id):
        finish("deleted", erase=True)
        return None
    user_id = find_user_id(session, clerk_id)
    if user_id is not None:
        return _Stored(user_id)
    client = clerk_client()
    if client is None:
        if row.age < get_settings().sync_wait_seconds:
            return WaitForUser(min(0.5, 0.05 * 2**retries))
        finish("waiting")
        return None
    try:
        fetched = fetch_user(client, clerk_id)
    except ClerkAPIError as error:
        log.warning("me_sync.clerk_unavailable", request_id=request_id, error=type(error).__name__)
        finish("clerk_unavailable", detail=type(error).__name__)
        return None
    if fetched is None:
        finish("unknown_user", erase=True)
        return None
    applied = apply_snapshot(work, fetched)
    if applied.result == "held":
        # Another stored user holds the address (an ordering problem that the webhook or
        # `clerk sync-user` settles); the holder is not the caller's to know.
        finish("waiting", detail="the email address is held by another stored user")
        return None
    if applied.result == "deleted":
        finish("deleted", erase=True)
        return None
    if applied.user_id is None:
        finish("user_failed", detail=applied.reason, erase=True)
        return None
    migrated_now = None
    if applied.onboarding == "completed":
        migrated_now = session_data_id_of(ClerkUser.model_validate(fetched).onboarding)
    return _Stored(applied.user_id, migrated_now)


@dataclass(frozen=True)
class _Finisher:
    """Records a run's outcome on its row: every call up to `requested` has its answer."""

    session: Session
    request_id: int
    requested: int

    def __call__(
        self,
        outcome: str,
        *,
        user_id: int | None = None,
        onboarding_status: str | None = None,
        errors: list[dict[str, str]] | None = None,
        completed_by: int | None = None,
        detail: str | None = None,
        erase: bool = False,
    ) -> None:
        values: dict[str, Any] = {
            "applied": self.requested,
            "outcome": outcome,
            "user_id": user_id,
            "onboarding_status": onboarding_status,
            "errors": errors,
            "detail": detail,
            "applied_at": func.clock_timestamp(),
        }
        if completed_by is not None:
            values["completed_by"] = completed_by
        if erase:
            values["onboarding"] = None
        self.session.execute(
            update(MeSyncRequest).where(MeSyncRequest.id == self.request_id).values(values)
        )
        # Delivered at the commit: wakes the web's calls waiting for this row (never on a
        # rollback). The channel is webhooks.me_sync.notifications'.
        self.session.execute(_NOTIFY, {"id": str(self.request_id)})
        log.info("me_sync.applied", request_id=self.request_id, outcome=outcome)


def record_error(request_id: int) -> None:
    """A run that failed on something unforeseen still answers its calls (`503`, try again),
    in a transaction of its own: the failed one was rolled back."""
    with unit_of_work() as work:
        requested = work.session.scalar(
            select(MeSyncRequest.requested).where(MeSyncRequest.id == request_id)
        )
        if requested is not None:
            _Finisher(work.session, request_id, requested)("error")
