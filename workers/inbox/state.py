"""State changes of the `webhook_events` inbox, as queries that flush and never commit.

    received ──> processed | ignored | waiting | failed      (one transaction)
    received / processing ──retry──> processing ──> ...      (attempt recorded, retried later)
    waiting ──released──> processed | ignored | ...
    failed / ignored / waiting ──replay──> received

`processed`, `ignored` and `failed` are final: a redelivered message finds the row final and
does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from cpn_sync.clerk import MAX_CLERK_ID_LENGTH, SUBJECT_USER_PATHS
from cpn_sync.task_contract import PROCESS_EVENT
from db.models import (
    FINAL_EVENT_STATUSES,
    OPEN_EVENT_STATUSES,
    DeletedUser,
    EventStatus,
    WebhookEvent,
)
from workers.core.locks import user_lock
from workers.core.unit_of_work import UnitOfWork
from workers.inbox.context import EventOutcome
from workers.inbox.payloads import ONBOARDING_TEXT, PAYLOAD_TEXT, STRIPPED_DATA

# Queries run on the tables rather than the mapped classes: this is the hot path of every
# event, and the ORM's statement handling costs more than the database's work here.
EVENTS = cast(Table, WebhookEvent.__table__)
TOMBSTONES = cast(Table, DeletedUser.__table__)

FINAL_STATUSES = FINAL_EVENT_STATUSES
OPEN_STATUSES = OPEN_EVENT_STATUSES


def _clerk_id_at(path: tuple[str, ...]) -> ColumnElement[Any]:
    """The string at `data.<path>` when it has a Clerk id's length, else NULL."""
    found = EVENTS.c.payload[("data", *path)]
    fits = and_(
        func.jsonb_typeof(found) == "string",
        func.length(found.astext).between(1, MAX_CLERK_ID_LENGTH),
    )
    return case((fits, found.astext), else_=None)


# A row the web stored without `clerk_user_id` gets it from the payload, as the web would
# (`cpn_sync.clerk.subject_user_id`): `data.id` of user events, else the first subject path.
CLERK_USER_ID: ColumnElement[Any] = func.coalesce(
    EVENTS.c.clerk_user_id,
    case(
        (EVENTS.c.event_type.like("user.%"), _clerk_id_at(("id",))),
        else_=func.coalesce(*(_clerk_id_at(path) for path in SUBJECT_USER_PATHS)),
    ),
)

_NO_FLUSH_WAIT = text("SET LOCAL synchronous_commit TO OFF")


@dataclass(frozen=True)
class LockedEvent:
    id: int
    status: str
    event_type: str
    clerk_user_id: str | None
    payload: str | None  # JSON text without the metadata; None once redacted
    onboarding: str | None  # JSON text of `data.unsafe_metadata.onboarding`, when present
    user_deleted: bool  # a tombstone exists for clerk_user_id


def _attempt() -> dict[str, Any]:
    columns = EVENTS.c
    return {"attempts": columns.attempts + 1, "last_attempt_at": func.now()}


def claim(session: Session, event_id: int) -> int | None:
    """Count an attempt before the work, in a transaction of its own; answer the attempts,
    or None when the event is final or gone.

    Used for suspect deliveries (redelivered, or re-sent by the sweeper): if this attempt
    kills its worker too, it is still counted, and a crash loop ends at `event_max_attempts`.
    Nothing depends on this commit being durable, so it does not wait for the disk.
    """
    session.execute(_NO_FLUSH_WAIT)
    attempts: int | None = session.scalar(
        update(EVENTS)
        .where(EVENTS.c.id == event_id, EVENTS.c.status.in_(OPEN_STATUSES))
        .values(status=EventStatus.PROCESSING, **_attempt())
        .returning(EVENTS.c.attempts)
    )
    return attempts


def lock_user_of(session: Session, event_id: int) -> str | None:
    """Answer the event's status (None: no such event); when it is still open, wait for the
    advisory lock of its Clerk user first (before any row lock, see `workers.core.locks`).

    A final event takes no lock: a redelivered message returns at once even while a batch
    holds the user."""
    still_open = EVENTS.c.status.in_(OPEN_STATUSES)
    row = session.execute(
        select(EVENTS.c.status, case((still_open, user_lock(CLERK_USER_ID)))).where(
            EVENTS.c.id == event_id
        )
    ).one_or_none()
    return None if row is None else str(row.status)


def status_of(connection: Session | Connection, event_id: int) -> str | None:
    return connection.scalar(select(EVENTS.c.status).where(EVENTS.c.id == event_id))


def _locked_events(condition: ColumnElement[bool]) -> Select[Any]:
    return (
        select(
            EVENTS.c.id,
            EVENTS.c.status,
            EVENTS.c.event_type,
            CLERK_USER_ID.label("clerk_user_id"),
            PAYLOAD_TEXT.label("payload"),
            ONBOARDING_TEXT.label("onboarding"),
            exists().where(TOMBSTONES.c.clerk_id == CLERK_USER_ID).label("user_deleted"),
        )
        .select_from(EVENTS.join(STRIPPED_DATA, true()))
        .where(condition)
    )


def _as_locked(row: Any) -> LockedEvent:
    return LockedEvent(
        row.id,
        row.status,
        row.event_type,
        row.clerk_user_id,
        row.payload,
        row.onboarding,
        row.user_deleted,
    )


# Built once: building these selects, and the cache key of the payload expressions in them,
# cost more than running them (they run for every message).
_IDS = bindparam("ids", type_=ARRAY(BigInteger))
_LOCK_EVENT = _locked_events(EVENTS.c.id == bindparam("event_id")).with_for_update(of=EVENTS)
# By primary key alone: with a status condition beside it, a generic plan may also read the
# status index, every entry of the open statuses, dead ones included, for each batch.
_LOCK_EVENTS = (
    _locked_events(EVENTS.c.id == any_(_IDS)).order_by(EVENTS.c.id).with_for_update(of=EVENTS)
)
_LOCK_BACKLOG = (
    _locked_events(EVENTS.c.status == EventStatus.RECEIVED)
    .order_by(EVENTS.c.received_at, EVENTS.c.id)
    .limit(bindparam("limit"))
    .with_for_update(of=EVENTS, skip_locked=True)
)
_OPEN_EVENTS = select(EVENTS.c.id, EVENTS.c.status, CLERK_USER_ID.label("clerk_user_id")).where(
    EVENTS.c.id == any_(_IDS)
)


def lock_event(session: Session, event_id: int) -> LockedEvent | None:
    row = session.execute(_LOCK_EVENT, {"event_id": event_id}).one_or_none()
    return None if row is None else _as_locked(row)


def open_events(connection: Session | Connection, event_ids: list[int]) -> dict[int, Any]:
    """Every given event that exists, by id: its status and Clerk user id (not locked)."""
    rows = connection.execute(_OPEN_EVENTS, {"ids": event_ids}).all()
    return {row.id: row for row in rows}


def lock_events(session: Session, event_ids: list[int]) -> list[LockedEvent]:
    """The given events that are still open, locked, in the order they were stored."""
    rows = session.execute(_LOCK_EVENTS, {"ids": event_ids}).all()
    return [_as_locked(row) for row in rows if row.status in OPEN_STATUSES]


def lock_backlog(session: Session, limit: int) -> list[LockedEvent]:
    """The oldest `received` events no other task has locked, locked for this one."""
    rows = session.execute(_LOCK_BACKLOG, {"limit": limit}).all()
    return [_as_locked(row) for row in rows]


def as_applied(session: Session, events: list[LockedEvent]) -> Iterator[LockedEvent]:
    """The events of one transaction one by one, each as it stands when its turn comes.

    They were read together, before any was applied. A `user.deleted` among them redacts the
    payloads of its user's events and tombstones the user, so a later event of that user is
    read again (and then ends `ignored`, as it would in a transaction of its own); nothing else
    one event does changes another's row.
    """
    deleted: set[str] = set()
    for event in events:
        if event.clerk_user_id in deleted:
            event = lock_event(session, event.id) or event
        yield event
        if event.event_type == "user.deleted" and event.clerk_user_id:
            deleted.add(event.clerk_user_id)


def _build_record_outcome(count_attempt: bool) -> Update:
    """Built once: constructing the statement costs more than running it."""
    values: dict[str, Any] = {
        "status": bindparam("new_status"),
        "last_error": bindparam("note"),
        "processed_at": case((bindparam("final", type_=Boolean), func.now()), else_=None),
        "clerk_user_id": bindparam("user_id"),
        "waiting_for": bindparam("waiting_for"),
    }
    if count_attempt:
        values.update(_attempt())
    return update(EVENTS).where(EVENTS.c.id == bindparam("event_id")).values(values)


_RECORD_OUTCOME = {count: _build_record_outcome(count) for count in (True, False)}


def record_outcome(
    session: Session, event: LockedEvent, outcome: EventOutcome, *, count_attempt: bool
) -> None:
    session.execute(
        _RECORD_OUTCOME[count_attempt],
        {
            "event_id": event.id,
            "new_status": outcome.status,
            "note": outcome.note,
            "final": outcome.status != EventStatus.WAITING,
            "user_id": event.clerk_user_id,
            "waiting_for": outcome.waiting_for,
        },
    )


_RECORD_PROCESSED = (
    update(EVENTS)
    .where(EVENTS.c.id == any_(_IDS))
    .values(
        status=EventStatus.PROCESSED,
        last_error=None,
        processed_at=func.now(),
        waiting_for=None,
        clerk_user_id=CLERK_USER_ID,
        **_attempt(),
    )
)


def record_processed(session: Session, events: list[LockedEvent]) -> None:
    """`record_outcome` of `processed`, counting the attempt, for many events in one statement
    (each row's Clerk user id filled in as `lock_events` read it)."""
    if events:
        session.execute(_RECORD_PROCESSED, {"ids": [event.id for event in events]})


def record_retries(session: Session, event_ids: list[int], reason: str) -> None:
    """A try failed for a passing reason and another is scheduled: `processing` until then."""
    session.execute(
        update(EVENTS)
        .where(EVENTS.c.id.in_(event_ids), EVENTS.c.status.in_(OPEN_STATUSES))
        .values(status=EventStatus.PROCESSING, last_error=reason, **_attempt())
    )


def record_failure(session: Session, event_id: int, reason: str, *, count_attempt: bool) -> bool:
    """Mark an open event `failed` with its reason; False when it had already ended."""
    result = session.execute(
        update(EVENTS)
        .where(EVENTS.c.id == event_id, EVENTS.c.status.in_(OPEN_STATUSES))
        .values(
            status=EventStatus.FAILED,
            last_error=reason[:2000],
            processed_at=func.now(),
            **(_attempt() if count_attempt else {}),
        )
        .returning(EVENTS.c.id)
    )
    return result.first() is not None


# One array parameter, not an IN list: a page of Clerk users arrives 500 at a time.
_ARRIVED = bindparam("users", type_=ARRAY(String))
_RELEASED = select(EVENTS.c.id).where(
    or_(EVENTS.c.clerk_user_id == any_(_ARRIVED), EVENTS.c.waiting_for == any_(_ARRIVED)),
    EVENTS.c.status == EventStatus.WAITING,
)


def queue_released(work: UnitOfWork) -> None:
    """Send again, after the commit, every `waiting` event of the users this transaction
    stored (or deleted), and every event waiting for one of them to give up an email address:
    one query for the whole transaction."""
    if not work.arrived_users:
        return
    released = work.session.scalars(_RELEASED, {"users": sorted(work.arrived_users)}).all()
    for event_id in released:
        work.after_commit(PROCESS_EVENT, [event_id])


def stuck_condition(received_after_seconds: int, processing_after_seconds: int) -> Any:
    """Rows whose message was probably lost: `received` and not taken in time, or `processing`
    for longer than any retry would wait."""
    now = func.now()
    return or_(
        and_(
            EVENTS.c.status == EventStatus.RECEIVED,
            EVENTS.c.received_at < now - _seconds(received_after_seconds),
        ),
        and_(
            EVENTS.c.status == EventStatus.PROCESSING,
            func.coalesce(EVENTS.c.last_attempt_at, EVENTS.c.received_at)
            < now - _seconds(processing_after_seconds),
        ),
    )


def _seconds(value: int) -> Any:
    return literal_column("interval '1 second'") * value
