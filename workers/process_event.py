"""`webhooks.process_event(event_id)`: apply one stored Clerk event, once in effect.

1. Claim the row (`processing`, attempts + 1) in a short transaction of its own.
2. In one transaction: take the advisory lock of the event's Clerk user (so events of one user
   never interleave), lock the row, dispatch by type through `HANDLERS`, record the outcome;
   commit; then send follow-ups (released `waiting` events, hooks' tasks).

A row that is already final makes a redelivered message a no-op. Transient errors (database or
broker unreachable, serialization failures, deadlocks) are retried with exponential backoff and
jitter; after the last retry the event is `failed`. A payload that cannot be applied is `failed`
at once, with a message that says why; `cpn-sync events replay` runs it again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from celery import Task
from pydantic import ValidationError

from cpn_sync.celery_config import PROCESS_EVENT, VISIBILITY_TIMEOUT
from cpn_sync.logs import get_logger
from cpn_sync.settings import get_settings
from workers import inbox
from workers.app import app
from workers.clerk_payloads import ClerkEvent
from workers.database import Publish, UnitOfWork, new_session, unit_of_work
from workers.errors import (
    TRANSIENT_ERRORS,
    EventNotFoundError,
    PermanentEventError,
    describe_database_error,
    describe_validation_error,
    is_transient,
)
from workers.handlers.context import EventContext, Outcome
from workers.handlers.sessions import handle_session
from workers.handlers.users import handle_user_deleted, handle_user_upsert

log = get_logger(__name__)

Handler = Callable[[EventContext], Outcome]

HANDLERS: dict[str, Handler] = {
    "user.created": handle_user_upsert,
    "user.updated": handle_user_upsert,
    "user.deleted": handle_user_deleted,
    "session.created": handle_session,
    "session.pending": handle_session,
    "session.ended": handle_session,
    "session.removed": handle_session,
    "session.revoked": handle_session,
}


def retry_countdown(retries: int, maximum: float) -> float:
    """Exponential backoff (1, 2, 4, ... seconds, capped) with jitter over its upper half.

    The cap stays far below the broker's visibility timeout, or Redis would deliver the
    delayed retry a second time.
    """
    ceiling = min(maximum, 2.0**retries, VISIBILITY_TIMEOUT / 4)
    return random.uniform(ceiling / 2, ceiling)


def dispatch(work: UnitOfWork, event: inbox.LockedEvent) -> Outcome:
    """Choose and run the handler; answer the outcome or raise PermanentEventError."""
    handler = HANDLERS.get(event.event_type)
    if handler is None:
        return Outcome("ignored", f"event type {event.event_type} is not handled")
    if event.user_deleted and event.clerk_user_id and event.event_type != "user.deleted":
        # Nothing of a deleted user is kept: not this late event's payload either.
        inbox.redact_user_payloads(work.session, event.clerk_user_id)
        return Outcome("ignored", f"user {event.clerk_user_id} was deleted; not applied")
    if event.payload is None:
        raise PermanentEventError(event.id, "the payload was redacted before it was applied")
    reason = f"payload does not match a Clerk {event.event_type}: "
    try:
        envelope = ClerkEvent.model_validate(event.payload)
    except ValidationError as error:
        raise PermanentEventError(event.id, reason + describe_validation_error(error)) from error
    try:
        return handler(EventContext(work, event.id, envelope))
    except ValidationError as error:  # handlers validate `data`
        details = describe_validation_error(error, prefix="data")
        raise PermanentEventError(event.id, reason + details) from error


def apply_event(event_id: int, publish: Publish | None = None, *, suspect: bool = False) -> str:
    """Apply one event in one transaction; answer its status afterwards ("already ..." when
    it had ended before). `suspect` deliveries (redelivered, or re-sent by the sweeper) count
    their attempt in a transaction of their own first.

    Transient errors propagate for the task to retry; everything else ends as an outcome.
    """
    with new_session() as session:
        if suspect:
            with session.begin():
                attempts = inbox.claim(session, event_id)
            limit = get_settings().event_max_attempts
            if attempts is not None and attempts > limit:
                reason = f"gave up after {limit} attempts without an outcome"
                return _fail(event_id, reason, count_attempt=False)
        try:
            with unit_of_work(publish, session) as work:
                status = inbox.lock_user_of(session, event_id)
                if status is None:
                    raise EventNotFoundError(event_id)
                if status in inbox.FINAL_STATUSES:
                    log.info("event.already_final", event_id=event_id, status=status)
                    return f"already {status}"
                event = inbox.lock_event(session, event_id)
                assert event is not None, "the row was there a statement ago"
                outcome = dispatch(work, event)
                inbox.record_outcome(session, event, outcome, count_attempt=not suspect)
        except EventNotFoundError:
            raise
        except PermanentEventError as error:
            return _fail(event_id, error.reason, count_attempt=not suspect)
        except Exception as error:
            if is_transient(error):
                raise
            return _fail_unexpectedly(event_id, error, count_attempt=not suspect)
    log.info("event.applied", event_id=event_id, event_type=event.event_type, status=outcome.status)
    return outcome.status


def _fail(event_id: int, reason: str, *, count_attempt: bool) -> str:
    """Record `failed` in a transaction of its own (the work's transaction rolled back)."""
    with new_session() as session, session.begin():
        inbox.record_failure(session, event_id, reason, count_attempt=count_attempt)
    log.warning("event.failed", event_id=event_id, reason=reason)
    return "failed"


def _fail_unexpectedly(event_id: int, error: Exception, *, count_attempt: bool) -> str:
    """A bug or a database rejection we did not foresee: record it and keep the event for a
    replay. Database errors are described without their DETAIL line, which may quote values."""
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        description = describe_database_error(error)
        log.error("event.error", event_id=event_id, error=description)
    else:
        description = type(error).__name__
        log.exception("event.error", event_id=event_id)
    reason = f"unexpected error ({description}); see the worker log"
    return _fail(event_id, reason, count_attempt=count_attempt)


def _record_retry(event_id: int, reason: str) -> None:
    """Best effort: while the database is unreachable the attempt goes unrecorded."""
    try:
        with new_session() as session, session.begin():
            inbox.record_retry(session, event_id, reason)
    except TRANSIENT_ERRORS:
        log.warning("event.retry_not_recorded", event_id=event_id)


@app.task(
    bind=True,
    name=PROCESS_EVENT,
    max_retries=get_settings().event_max_retries,
    acks_late=True,
    reject_on_worker_lost=True,
)
def process_event(self: Task[Any, Any], event_id: int, recovered: bool = False) -> None:
    """Args `[event_id]` (webhook_events.id), as the web sends it; the sweeper adds
    `recovered=True` for rows whose earlier message was lost."""
    suspect = recovered or bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        apply_event(event_id, suspect=suspect)
    except EventNotFoundError:
        log.warning("event.not_found", event_id=event_id)
    except TRANSIENT_ERRORS as error:
        retries = self.request.retries
        kind = type(error).__name__
        if retries >= (self.max_retries or 0):
            _fail(
                event_id,
                f"gave up after {retries + 1} tries; last error: {kind}",
                count_attempt=True,
            )
            return
        _record_retry(event_id, f"try {retries + 1} failed ({kind}); retrying")
        countdown = retry_countdown(retries, get_settings().event_retry_backoff_max_seconds)
        log.warning(
            "event.retry", event_id=event_id, error=kind, retry=retries + 1, countdown=countdown
        )
        raise self.retry(exc=error, countdown=countdown) from error
