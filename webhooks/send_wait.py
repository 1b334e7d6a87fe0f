"""`cpn-sync send --wait`: follow the stored event until a worker has applied it, and say what it
wrote (user, session, onboarding migration), so a developer sees the whole loop in one command.

It reads the database of DATABASE_URL (or of the running `make run`): ids, statuses and the
service's own error texts, never a payload value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, select

from db.models import FINAL_EVENT_STATUSES, DataMigration, EventStatus, User, UserSession
from db.models import WebhookEvent as Event

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Outcome:
    status: str | None  # None: not stored (yet)
    reason: str | None


def wait_for_outcome(engine: Engine, svix_id: str, timeout: float) -> Outcome:
    """The event's state once final (or `waiting`, which only its user's arrival ends), else
    the last state seen when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    outcome = Outcome(None, None)
    while True:
        with engine.connect() as connection:
            row = connection.execute(
                select(Event.status, Event.last_error).where(Event.svix_id == svix_id)
            ).one_or_none()
        if row is not None:
            outcome = Outcome(row.status, row.last_error)
            if row.status in (*FINAL_EVENT_STATUSES, EventStatus.WAITING):
                return outcome
        if time.monotonic() >= deadline:
            return outcome
        time.sleep(POLL_SECONDS)


def what_was_written(
    engine: Engine, clerk_user_id: str | None, session_id: str | None
) -> list[str]:
    """One line each for the user row, the session row and the latest onboarding migration."""
    with engine.connect() as connection:
        user_id = (
            connection.scalar(select(User.id).where(User.clerk_id == clerk_user_id))
            if clerk_user_id
            else None
        )
        lines = [f"user: {user_id if user_id is not None else 'none'} ({clerk_user_id or '-'})"]
        if session_id:
            session = connection.execute(
                select(UserSession.id, UserSession.is_active).where(
                    UserSession.session_id == session_id
                )
            ).one_or_none()
            lines.append(
                f"session: none ({session_id})"
                if session is None
                else f"session: {session.id} ({session_id}, "
                f"{'active' if session.is_active else 'ended'})"
            )
        migration = (
            connection.execute(
                select(DataMigration.id, DataMigration.status, DataMigration.error_message)
                .where(DataMigration.clerk_id == clerk_user_id)
                .order_by(DataMigration.id.desc())
                .limit(1)
            ).one_or_none()
            if clerk_user_id
            else None
        )
    if migration is None:
        lines.append("onboarding migration: none")
    else:
        error = f": {migration.error_message}" if migration.error_message else ""
        lines.append(f"onboarding migration {migration.id}: {migration.status}{error}")
    return lines
