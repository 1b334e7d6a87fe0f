"""Erasing stored payloads: the rows and their outcomes stay, the personal data goes (SQL NULL,
`redacted_at` set). Used by `user.deleted`, by events that are not applied, and by retention."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, null, update
from sqlalchemy.orm import Session

from workers.inbox.state import EVENTS


def redact_payloads(session: Session, *conditions: ColumnElement[bool]) -> int:
    """Erase stored payloads (the rows and their outcomes stay); answer how many."""
    result = session.execute(
        update(EVENTS)
        .where(EVENTS.c.payload.is_not(None), *conditions)
        .values(payload=null(), redacted_at=func.now())  # SQL NULL, not JSON null
        .returning(EVENTS.c.id)
    )
    return len(result.all())


def redact_user_payloads(session: Session, clerk_user_id: str) -> int:
    """Every stored payload about the user, whatever the event's type."""
    return redact_payloads(session, EVENTS.c.clerk_user_id == clerk_user_id)


def redact_event_payload(session: Session, event_id: int) -> int:
    return redact_payloads(session, EVENTS.c.id == event_id)
