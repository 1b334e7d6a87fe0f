"""The web's statements on `me_sync_requests`: each one self-contained (the web's engine runs
in autocommit), so a call the web stored is durable when `store_call` returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.me_sync import NO_ONBOARDING

# A call again with the same (sub, sessionDataId) reuses the row and is numbered after the
# earlier ones; the onboarding it brings replaces what a run may already have erased.
_STORE = text(
    "INSERT INTO me_sync_requests (clerk_id, session_data_id, onboarding)"
    " VALUES (:sub, :key, CAST(:onboarding AS jsonb))"
    " ON CONFLICT ON CONSTRAINT unique_me_sync_request DO UPDATE"
    " SET requested = me_sync_requests.requested + 1, onboarding = EXCLUDED.onboarding,"
    " requested_at = now()"
    " RETURNING id, requested"
)
_READ = text(
    "SELECT applied, outcome, onboarding_status, errors, detail, completed_by, user_id"
    " FROM me_sync_requests WHERE id = :id"
)


# Clerk does not know the user: nothing about it stays, the call's row included (unless a
# newer call of the same row is still to be answered).
_FORGET = text(
    "DELETE FROM me_sync_requests"
    " WHERE id = :id AND outcome = 'unknown_user' AND applied >= requested"
)


@dataclass(frozen=True, slots=True)
class StoredCall:
    request_id: int
    number: int  # this call's number among the calls of its row (`requested` after it)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    applied: int
    outcome: str | None
    onboarding_status: str | None
    errors: list[dict[str, str]] | None
    detail: str | None
    completed_by: int | None
    user_id: int | None


async def store_call(
    engine: AsyncEngine, clerk_id: str, key: str | None, onboarding_json: str | None
) -> StoredCall:
    """Store the call (durable on return); `key` None: a call without onboarding data."""
    parameters: dict[str, Any] = {
        "sub": clerk_id,
        "key": NO_ONBOARDING if key is None else key,
        "onboarding": onboarding_json,
    }
    async with engine.connect() as connection:
        row = (await connection.execute(_STORE, parameters)).one()
    return StoredCall(row.id, row.requested)


async def read_outcome(engine: AsyncEngine, request_id: int) -> RunOutcome | None:
    """None when the row is gone: `user.deleted` erased it with its user."""
    async with engine.connect() as connection:
        row = (await connection.execute(_READ, {"id": request_id})).one_or_none()
    if row is None:
        return None
    return RunOutcome(
        row.applied,
        row.outcome,
        row.onboarding_status,
        row.errors,
        row.detail,
        row.completed_by,
        row.user_id,
    )


async def forget_unknown_user(engine: AsyncEngine, request_id: int) -> None:
    async with engine.connect() as connection:
        await connection.execute(_FORGET, {"id": request_id})
