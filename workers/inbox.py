"""State changes of the `webhook_events` inbox, as queries that flush and never commit.

    received ──> processed | ignored | waiting | failed      (one transaction)
    received / processing ──retry──> processing ──> ...      (attempt recorded, retried later)
    waiting ──released──> processed | ignored | ...
    failed / ignored / waiting ──replay──> received

`processed`, `ignored` and `failed` are final: a redelivered message finds the row final and
does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from db.models import DeletedUser, WebhookEvent
from workers.handlers.context import Outcome
from workers.locks import user_lock

FINAL_STATUSES = ("processed", "ignored", "failed")
OPEN_STATUSES = ("received", "processing", "waiting")
USER_EVENT_PREFIXES = ("user.", "session.")

# A row the web stored without `clerk_user_id` gets it from the payload: `data.id` of user
# events, `data.user_id` of session events.
CLERK_USER_ID: ColumnElement[Any] = func.coalesce(
    WebhookEvent.clerk_user_id,
    case(
        (WebhookEvent.event_type.like("user.%"), WebhookEvent.payload["data"]["id"].astext),
        (WebhookEvent.event_type.like("session.%"), WebhookEvent.payload["data"]["user_id"].astext),
        else_=None,
    ),
)

_NO_FLUSH_WAIT = text("SET LOCAL synchronous_commit TO OFF")


@dataclass(frozen=True)
class LockedEvent:
    id: int
    status: str
    event_type: str
    clerk_user_id: str | None
    payload: Any | None
    user_deleted: bool  # a tombstone exists for clerk_user_id


def _attempt() -> dict[str, Any]:
    return {"attempts": WebhookEvent.attempts + 1, "last_attempt_at": func.now()}


def claim(session: Session, event_id: int) -> int | None:
    """Count an attempt before the work, in a transaction of its own; answer the attempts,
    or None when the event is final or gone.

    Used for suspect deliveries (redelivered, or re-sent by the sweeper): if this attempt
    kills its worker too, it is still counted, and a crash loop ends at `event_max_attempts`.
    Nothing depends on this commit being durable, so it does not wait for the disk.
    """
    session.execute(_NO_FLUSH_WAIT)
    return session.scalar(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.status.in_(OPEN_STATUSES))
        .values(status="processing", **_attempt())
        .returning(WebhookEvent.attempts)
    )


def lock_user_of(session: Session, event_id: int) -> str | None:
    """Take the advisory lock of the event's Clerk user (before any row lock, see
    `workers.locks`); answer the event's status, None when there is no such event."""
    row = session.execute(
        select(WebhookEvent.status, user_lock(CLERK_USER_ID)).where(WebhookEvent.id == event_id)
    ).one_or_none()
    return None if row is None else str(row.status)


def status_of(session: Session, event_id: int) -> str | None:
    return session.scalar(select(WebhookEvent.status).where(WebhookEvent.id == event_id))


def lock_event(session: Session, event_id: int) -> LockedEvent | None:
    clerk_user_id = CLERK_USER_ID.label("clerk_user_id")
    row = session.execute(
        select(
            WebhookEvent.id,
            WebhookEvent.status,
            WebhookEvent.event_type,
            clerk_user_id,
            WebhookEvent.payload,
            exists().where(DeletedUser.clerk_id == CLERK_USER_ID).label("user_deleted"),
        )
        .where(WebhookEvent.id == event_id)
        .with_for_update(of=WebhookEvent)
    ).one_or_none()
    if row is None:
        return None
    return LockedEvent(
        row.id, row.status, row.event_type, row.clerk_user_id, row.payload, row.user_deleted
    )


def record_outcome(
    session: Session, event: LockedEvent, outcome: Outcome, *, count_attempt: bool
) -> None:
    final = outcome.status != "waiting"
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event.id)
        .values(
            status=outcome.status,
            last_error=outcome.note,
            processed_at=func.now() if final else None,
            clerk_user_id=event.clerk_user_id,
            **(_attempt() if count_attempt else {}),
        )
    )


def record_retry(session: Session, event_id: int, reason: str) -> None:
    """A try failed for a passing reason and another is scheduled: `processing` until then."""
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.status.in_(OPEN_STATUSES))
        .values(status="processing", last_error=reason, **_attempt())
    )


def record_failure(session: Session, event_id: int, reason: str, *, count_attempt: bool) -> bool:
    """Mark an open event `failed` with its reason; False when it had already ended."""
    result = session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.status.in_(OPEN_STATUSES))
        .values(
            status="failed",
            last_error=reason[:2000],
            processed_at=func.now(),
            **(_attempt() if count_attempt else {}),
        )
        .returning(WebhookEvent.id)
    )
    return result.first() is not None


def waiting_event_ids(session: Session, clerk_user_id: str) -> Sequence[int]:
    return session.scalars(
        select(WebhookEvent.id).where(
            WebhookEvent.clerk_user_id == clerk_user_id, WebhookEvent.status == "waiting"
        )
    ).all()


def redact_payloads(session: Session, *conditions: ColumnElement[bool]) -> int:
    """Erase stored payloads (the rows and their outcomes stay); answer how many."""
    result = session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.payload.is_not(None), *conditions)
        .values(payload=null(), redacted_at=func.now())  # SQL NULL, not JSON null
        .returning(WebhookEvent.id)
    )
    return len(result.all())


def redact_user_payloads(session: Session, clerk_user_id: str) -> int:
    return redact_payloads(session, WebhookEvent.clerk_user_id == clerk_user_id)


def stuck_condition(received_after_seconds: int, processing_after_seconds: int) -> Any:
    """Rows whose message was probably lost: `received` and not taken in time, or `processing`
    for longer than any retry would wait."""
    now = func.now()
    return or_(
        and_(
            WebhookEvent.status == "received",
            WebhookEvent.received_at < now - _seconds(received_after_seconds),
        ),
        and_(
            WebhookEvent.status == "processing",
            func.coalesce(WebhookEvent.last_attempt_at, WebhookEvent.received_at)
            < now - _seconds(processing_after_seconds),
        ),
    )


def _seconds(value: int) -> Any:
    return literal_column("interval '1 second'") * value
