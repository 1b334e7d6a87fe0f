"""What a finished run of a call says to the caller (DESIGN.md section 10).

`200 {"user": {"clerk_id", "id"}, "onboarding": {"status", "errors"}}` once the user is in the
database; `404` for a deleted user or one Clerk does not know; `202 {"status": "pending"}` while
the user is not there yet. The call whose run completed the migration says `completed`, every
other call of the same data (a repeat, a concurrent duplicate, after a webhook did it)
`already_completed`.
"""

from __future__ import annotations

from typing import Any

from webhooks.me_sync.errors import SyncError, SyncReason
from webhooks.me_sync.rows import RunOutcome

PENDING: dict[str, Any] = {"status": "pending"}


def user_answer(clerk_id: str, user_id: int, status: str, errors: list[Any]) -> dict[str, Any]:
    return {
        "user": {"clerk_id": clerk_id, "id": user_id},
        "onboarding": {"status": status, "errors": errors},
    }


def answer_of(clerk_id: str, number: int, run: RunOutcome) -> tuple[int, dict[str, Any]]:
    """(status code, body) of call `number`, whose run is `run`; `SyncError` for a 404/422."""
    if run.outcome == "deleted":
        raise SyncError(SyncReason.DELETED_USER, "this user was deleted")
    if run.outcome == "unknown_user":
        raise SyncError(SyncReason.UNKNOWN_USER, "Clerk does not know this user")
    if run.outcome == "error":
        raise SyncError(SyncReason.UNAVAILABLE, "the sync failed; try again later", retry_after=5)
    if run.outcome == "user_failed":
        raise SyncError(SyncReason.USER_NOT_STORABLE, run.detail or "the user cannot be stored")
    if run.outcome != "done" or run.user_id is None:  # waiting for the user, Clerk unavailable
        return 202, PENDING
    status = run.onboarding_status or "none"
    if status == "skipped" or (status == "completed" and run.completed_by != number):
        status = "already_completed"
    errors = run.errors if status == "failed" and run.errors else []
    return 200, user_answer(clerk_id, run.user_id, status, errors)
