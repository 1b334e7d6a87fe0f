"""Apply a backlog in batches: more `received` events in the transaction of the one a task
was sent for, each with its own outcome.

Under load the commit (a disk flush) is most of an event's cost; sharing it among up to
EVENT_BATCH_SIZE events is what lets a worker keep up with a burst. The messages of events
applied here find them final and return at once. An event is taken only when its row is not
locked by another task and its user's lock is free at once (try-locks never wait, so two
batching workers cannot deadlock); each runs in a savepoint, so one that fails does not undo
the others. An event that fails is recorded `failed` with its reason, as its own message
would record it.
"""

from __future__ import annotations

import sqlalchemy.exc

from cpn_sync.logs import get_logger
from workers.core.errors import PermanentEventError, describe_database_error, is_transient
from workers.core.locks import try_lock_users
from workers.core.unit_of_work import UnitOfWork
from workers.inbox import state
from workers.inbox.context import Outcome
from workers.inbox.dispatch import dispatch

log = get_logger(__name__)


def apply_backlog(work: UnitOfWork, limit: int) -> int:
    """Apply up to `limit` more `received` events, oldest first; answer how many."""
    session = work.session
    events = state.lock_backlog(session, limit)
    users = sorted({event.clerk_user_id for event in events if event.clerk_user_id})
    taken = try_lock_users(session, users)
    free_users = {user for user, free in zip(users, taken, strict=True) if free}
    applied = 0
    for event in state.as_applied(session, events):
        if event.clerk_user_id and event.clerk_user_id not in free_users:
            continue  # another task is applying this user's events: its own message will
        outcome = apply_in_savepoint(work, event)
        if outcome is not None:
            log.info("event.applied", event_id=event.id, event_type=event.event_type,
                     status=outcome.status, batched=True)  # fmt: skip
        applied += 1
    return applied


def apply_in_savepoint(work: UnitOfWork, event: state.LockedEvent) -> Outcome | None:
    """Apply one of several events of a transaction in a savepoint: its outcome, or None when
    it failed (recorded `failed` with the reason; the others' work stands). Transient errors
    propagate: the whole transaction is tried again."""
    try:
        with work.savepoint():
            outcome = dispatch(work, event)
            state.record_outcome(work.session, event, outcome, count_attempt=True)
    except PermanentEventError as error:
        reason = error.reason
    except Exception as error:
        if is_transient(error):
            raise
        reason = describe_unexpected(event.id, error)
    else:
        return outcome
    state.record_failure(work.session, event.id, reason, count_attempt=True)
    log.warning("event.failed", event_id=event.id, reason=reason)
    return None


def describe_unexpected(event_id: int, error: Exception) -> str:
    """Log an error nobody foresaw (a bug, or a database rejection) and answer the reason to
    record. Database errors are described without their DETAIL line, which may quote values."""
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        description = describe_database_error(error)
        log.error("event.error", event_id=event_id, error=description)
    else:
        description = type(error).__name__
        log.exception("event.error", event_id=event_id)
    return f"unexpected error ({description}); see the worker log"
