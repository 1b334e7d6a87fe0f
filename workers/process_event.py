"""`webhooks.process_event(event_id)`: apply one stored Clerk event, once in effect.

In one transaction: take the advisory lock of the event's Clerk user (events of one user never
interleave), lock the row, dispatch by type (`workers.dispatch`), record the outcome; while a
backlog waits, apply more `received` events in the same transaction (`workers.backlog`);
commit; then send follow-ups (released `waiting` events, hooks' tasks).

A row that is already final makes a redelivered message a no-op. Transient errors (database or
broker unreachable, serialization failures, deadlocks) are retried with exponential backoff and
jitter; after the last retry the event is `failed`. A payload that cannot be applied is `failed`
at once, with a message that says why; `cpn-sync events replay` runs it again.
"""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy.exc
from celery import Task

from cpn_sync.celery_config import PROCESS_EVENT, VISIBILITY_TIMEOUT
from cpn_sync.logs import get_logger
from cpn_sync.settings import get_settings
from workers import inbox
from workers.app import app
from workers.backlog import apply_backlog
from workers.database import Publish, get_engine, new_session, unit_of_work
from workers.dispatch import dispatch
from workers.errors import (
    TRANSIENT_ERRORS,
    EventNotFoundError,
    PermanentEventError,
    describe_database_error,
    is_transient,
)

log = get_logger(__name__)


def retry_countdown(retries: int, maximum: float) -> float:
    """Exponential backoff (1, 2, 4, ... seconds, capped) with jitter over its upper half.

    The cap stays far below the broker's visibility timeout, or Redis would deliver the
    delayed retry a second time.
    """
    ceiling = min(maximum, 2.0**retries, VISIBILITY_TIMEOUT / 4)
    return random.uniform(ceiling / 2, ceiling)


def apply_event(
    event_id: int,
    publish: Publish | None = None,
    *,
    suspect: bool = False,
    batch_size: int | None = None,
) -> str:
    """Apply one event; answer its status afterwards ("already ..." when it had ended).

    `suspect` deliveries (redelivered, or re-sent by the sweeper) count their attempt in a
    transaction of their own first, and are applied alone. Transient errors propagate for the
    task to retry; everything else ends as an outcome.
    """
    settings = get_settings()
    batch_size = 1 if suspect else batch_size or settings.event_batch_size
    if not suspect:
        # Most messages of a backlog find their event applied by a batch: answer them without
        # a transaction (half the round trips).
        with get_engine().connect() as connection:
            status = inbox.status_of(
                connection.execution_options(isolation_level="AUTOCOMMIT"), event_id
            )
        if status is None:
            raise EventNotFoundError(event_id)
        if status in inbox.FINAL_STATUSES:
            return f"already {status}"
    with new_session() as session:
        if suspect:
            with session.begin():
                attempts = inbox.claim(session, event_id)
            if attempts is not None and attempts > settings.event_max_attempts:
                reason = f"gave up after {settings.event_max_attempts} attempts without an outcome"
                return _fail(event_id, reason, count_attempt=False)
        try:
            with unit_of_work(publish, session) as work:
                status = inbox.lock_user_of(session, event_id)
                if status is None:
                    raise EventNotFoundError(event_id)
                if status in inbox.FINAL_STATUSES:
                    return f"already {status}"
                # Read again under the row lock: a batch may have applied it while we waited.
                event = inbox.lock_event(session, event_id)
                assert event is not None, "the row was there a statement ago"
                if event.status in inbox.FINAL_STATUSES:
                    return f"already {event.status}"
                outcome = dispatch(work, event)
                inbox.record_outcome(session, event, outcome, count_attempt=not suspect)
                if batch_size > 1:
                    apply_backlog(work, batch_size - 1)
                inbox.queue_released(work)
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
    """Args `[event_id]` (webhook_events.id), as the web sends it; the sweeper sends
    `[event_id, true]` for rows whose earlier message was lost."""
    suspect = recovered or bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        apply_event(event_id, suspect=suspect)
    except EventNotFoundError:
        log.warning("event.not_found", event_id=event_id)
    except TRANSIENT_ERRORS as error:
        retries = self.request.retries
        kind = type(error).__name__
        if retries >= (self.max_retries or 0):
            reason = f"gave up after {retries + 1} tries; last error: {kind}"
            _fail(event_id, reason, count_attempt=True)
            return
        _record_retry(event_id, f"try {retries + 1} failed ({kind}); retrying")
        countdown = retry_countdown(retries, get_settings().event_retry_backoff_max_seconds)
        log.warning(
            "event.retry", event_id=event_id, error=kind, retry=retries + 1, countdown=countdown
        )
        raise self.retry(exc=error, countdown=countdown) from error
