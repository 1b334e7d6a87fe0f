"""`webhooks.process_event(event_id)`: apply one stored Clerk event, once in effect; and
`webhooks.process_events(event_ids)`: apply the events the web stored together, in one
transaction, each with its own outcome.

In one transaction: take the advisory lock of the event's Clerk user (events of one user never
interleave), lock the row, apply it (`workers.inbox.apply`: dispatch by type, record the
outcome); while a backlog waits, apply more `received` events in the same transaction
(`workers.inbox.backlog`); commit; then send follow-ups (released `waiting` events, CPN
recompute requests).

A batch shares one commit (most of an event's cost) and one message (Celery's per-message cost
is several times the database work of an event), and its plain events (a user's or a session's
upsert, nothing to decide) share their statements (`workers.inbox.plain_events`). It takes the
advisory locks of all its users in sorted order before any row lock, so two batches never
deadlock. One event that fails does not undo the others: the batch is then rolled back and
applied again with each event in a savepoint (savepoints cost two round trips per event, so
only a batch that needs them pays).

A row that is already final makes a redelivered message a no-op. Transient errors (database or
broker unreachable, serialization failures, deadlocks) are retried with exponential backoff and
jitter; after the last retry the event is `failed`. A payload that cannot be applied is `failed`
at once, with a message that says why; `cpn-sync events replay` runs it again.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from cpn_sync.logs import get_logger
from cpn_sync.settings import get_settings
from cpn_sync.task_contract import PROCESS_EVENT, PROCESS_EVENTS
from db.models import EventStatus
from workers.core.engine import get_engine, new_session
from workers.core.errors import TRANSIENT_ERRORS, is_transient, without_values
from workers.core.locks import lock_user, lock_users
from workers.core.tasks import retry_countdown, retry_with, task
from workers.core.unit_of_work import (
    Publish,
    UnitOfWork,
    send_task,
    unit_of_work,
)
from workers.inbox import state
from workers.inbox.apply import Applied, apply, apply_in_savepoint, describe_unexpected, log_applied
from workers.inbox.backlog import apply_backlog
from workers.inbox.context import EventOutcome
from workers.inbox.errors import EventNotFoundError, PermanentEventError
from workers.inbox.plain_events import apply_plain

log = get_logger(__name__)


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
            status = state.status_of(
                connection.execution_options(isolation_level="AUTOCOMMIT"), event_id
            )
        if status is None:
            raise EventNotFoundError(event_id)
        if status in state.FINAL_STATUSES:
            return f"already {status}"
    with new_session() as session:
        if suspect:
            with session.begin():
                attempts = state.claim(session, event_id)
            if attempts is not None and attempts > settings.event_max_attempts:
                reason = f"gave up after {settings.event_max_attempts} attempts without an outcome"
                return _fail(event_id, reason, count_attempt=False)
        try:
            with unit_of_work(publish, session) as work:
                status = state.lock_user_of(session, event_id)
                if status is None:
                    raise EventNotFoundError(event_id)
                if status in state.FINAL_STATUSES:
                    return f"already {status}"
                # Read again under the row lock: a batch may have applied it while we waited.
                event = state.lock_event(session, event_id)
                assert event is not None, "the row was there a statement ago"
                if event.status in state.FINAL_STATUSES:
                    return f"already {event.status}"
                outcome = apply(work, event, count_attempt=not suspect)
                backlog = apply_backlog(work, batch_size - 1) if batch_size > 1 else []
                state.queue_released(work)
        except EventNotFoundError:
            raise
        except PermanentEventError as error:
            return _fail(event_id, error.reason, count_attempt=not suspect)
        except Exception as error:
            if is_transient(error):
                raise
            return _fail_unexpectedly(event_id, error, count_attempt=not suspect)
    log_applied([(event, outcome)], batched=False)
    log_applied(backlog, batched=True)
    return outcome.status


class _BatchEventFailedError(Exception):
    """An event of a batch failed: apply the batch again, each event in a savepoint."""


def apply_events(event_ids: list[int], publish: Publish | None = None) -> dict[int, str]:
    """Apply the open events among `event_ids` in one transaction; answer each one's status.

    Events already final are left alone (a redelivered or repeated message); unknown ids are
    logged. A transient error rolls the whole batch back and propagates for the task to retry;
    any other error fails only its own event: the batch runs once without savepoints (two round
    trips per event saved), and only when an event fails is it rolled back and run again with
    each event in a savepoint of its own.
    """
    try:
        return _apply_batch(event_ids, publish, isolated=False)
    except _BatchEventFailedError:
        return _apply_batch(event_ids, publish, isolated=True)


def _apply_batch(
    event_ids: list[int], publish: Publish | None, *, isolated: bool
) -> dict[int, str]:
    """One transaction over the batch: which events are open and whose, the users' locks in
    sorted order, then the rows."""
    applied: Applied = []
    with new_session() as session, unit_of_work(publish, session) as work:
        found = state.open_events(session, event_ids)
        statuses = _statuses_found(event_ids, found, log_unknown=not isolated)
        open_rows = [row for row in found.values() if row.status in state.OPEN_STATUSES]
        if not open_rows:
            return statuses
        users = sorted({row.clerk_user_id for row in open_rows if row.clerk_user_id})
        lock_users(session, users)
        events = state.lock_events(session, [row.id for row in open_rows])
        for event in events:
            if event.clerk_user_id and event.clerk_user_id not in users:
                lock_user(session, event.clerk_user_id)  # its user id was filled in meanwhile
        if not isolated:
            applied, events = _apply_plain_or_isolate(work, events)
            statuses.update((event.id, outcome.status) for event, outcome in applied)
        for event in state.as_applied(session, events):
            apply = apply_in_savepoint if isolated else _apply_or_isolate
            outcome = apply(work, event)
            statuses[event.id] = EventStatus.FAILED if outcome is None else outcome.status
            if outcome is not None:
                applied.append((event, outcome))
        state.queue_released(work)
    log_applied(applied, batched=True)
    return statuses


def _statuses_found(
    event_ids: list[int], found: dict[int, Any], *, log_unknown: bool
) -> dict[int, str]:
    """Each event found, as `already <status>` until the batch says otherwise; unknown ids are
    logged (once: not again when the batch runs again in savepoints)."""
    for event_id in event_ids:
        if log_unknown and event_id not in found:
            log.warning("event.not_found", event_id=event_id)
    return {event_id: f"already {row.status}" for event_id, row in found.items()}


def _apply_plain_or_isolate(
    work: UnitOfWork, events: list[state.LockedEvent]
) -> tuple[Applied, list[state.LockedEvent]]:
    """The optimistic pass's plain events (`workers.inbox.plain_events`); a failure of their
    statements sends the batch to savepoints, where every event goes one by one."""
    try:
        return apply_plain(work, events)
    except Exception as error:
        if is_transient(error):
            raise
        raise _BatchEventFailedError from error


def _apply_or_isolate(work: UnitOfWork, event: state.LockedEvent) -> EventOutcome:
    """The optimistic pass: any failure but a transient one sends the batch to savepoints."""
    try:
        outcome = apply(work, event)
    except Exception as error:
        if is_transient(error):
            raise
        raise _BatchEventFailedError from error
    return outcome


def _fail(event_id: int, reason: str, *, count_attempt: bool) -> str:
    """Record `failed` in a transaction of its own (the work's transaction rolled back)."""
    with new_session() as session, session.begin():
        state.record_failure(session, event_id, reason, count_attempt=count_attempt)
    log.warning("event.failed", event_id=event_id, reason=reason)
    return EventStatus.FAILED


def _fail_unexpectedly(event_id: int, error: Exception, *, count_attempt: bool) -> str:
    """A bug or a database rejection we did not foresee: record it and keep the event for a
    replay."""
    return _fail(event_id, describe_unexpected(event_id, error), count_attempt=count_attempt)


def _retry_or_fail(task: Task[Any, Any], event_ids: list[int], error: Exception) -> None:
    """After a transient error: send the message again with backoff; after the last retry,
    record `failed` on each of its events that is still open (never lost)."""
    retries = task.request.retries
    kind = type(error).__name__
    if retries >= (task.max_retries or 0):
        reason = f"gave up after {retries + 1} tries; last error: {kind}"
        for event_id in event_ids:
            _fail(event_id, reason, count_attempt=True)
        return
    _record_retries(event_ids, f"try {retries + 1} failed ({kind}); retrying")
    countdown = retry_countdown(retries)
    log.warning(
        "event.retry", event_ids=event_ids, error=kind, retry=retries + 1, countdown=countdown
    )
    retry_with(task, without_values(error), countdown)


def _record_retries(event_ids: list[int], reason: str) -> None:
    """Best effort: while the database is unreachable the attempt goes unrecorded."""
    try:
        with new_session() as session, session.begin():
            state.record_retries(session, event_ids, reason)
    except TRANSIENT_ERRORS:
        log.warning("event.retry_not_recorded", event_ids=event_ids)


# They retry by themselves (the attempt is recorded on the rows; after the last retry the
# events are `failed`), and a message whose worker died goes back to the queue.
@task(PROCESS_EVENT, bind=True, reject_on_worker_lost=True)
def process_event(self: Task[Any, Any], event_id: int, recovered: bool = False) -> None:
    """Args `[event_id]` (webhook_events.id), as `events replay` and released `waiting` events
    send it; the sweeper sends `[event_id, true]` for rows whose earlier message was lost."""
    suspect = recovered or bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        apply_event(event_id, suspect=suspect)
    except EventNotFoundError:
        log.warning("event.not_found", event_id=event_id)
    except TRANSIENT_ERRORS as error:
        _retry_or_fail(self, [event_id], error)


@task(PROCESS_EVENTS, bind=True, reject_on_worker_lost=True)
def process_events(self: Task[Any, Any], event_ids: list[int]) -> None:
    """Args `[[event_id, ...]]`, as the web sends them.

    A redelivered batch (its worker died) may hold the event that killed it: each of its events
    goes on alone as a suspect `process_event`, so that one fails by itself after
    EVENT_MAX_ATTEMPTS instead of taking the batch with it.
    """
    if (self.request.delivery_info or {}).get("redelivered"):
        log.warning("event.batch_redelivered", events=len(event_ids))
        for event_id in event_ids:
            send_task(PROCESS_EVENT, [event_id, True])
        return
    try:
        apply_events(event_ids)
    except TRANSIENT_ERRORS as error:
        _retry_or_fail(self, event_ids, error)
