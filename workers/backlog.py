"""Apply a backlog in batches: more `received` events in the transaction of the one a task
was sent for, each with its own outcome.

Under load the commit (a disk flush) is most of an event's cost; sharing it among up to
EVENT_BATCH_SIZE events is what lets a worker keep up with a burst. The messages of events
applied here find them final and return at once. An event is taken only when its row is not
locked by another task and its user's lock is free at once (try-locks never wait, so two
batching workers cannot deadlock); each runs in a savepoint, so one that fails does not undo
the others.
"""

from __future__ import annotations

from cpn_sync.logs import get_logger
from workers import inbox
from workers.database import UnitOfWork
from workers.dispatch import dispatch
from workers.errors import PermanentEventError, is_transient
from workers.locks import try_lock_users

log = get_logger(__name__)


def apply_backlog(work: UnitOfWork, limit: int) -> int:
    """Apply up to `limit` more `received` events, oldest first; answer how many."""
    session = work.session
    events = inbox.lock_backlog(session, limit)
    users = sorted({event.clerk_user_id for event in events if event.clerk_user_id})
    taken = try_lock_users(session, users)
    free_users = {user for user, free in zip(users, taken, strict=True) if free}
    applied = 0
    for event in inbox.as_applied(session, events):
        if event.clerk_user_id and event.clerk_user_id not in free_users:
            continue  # another task is applying this user's events: its own message will
        try:
            with work.savepoint():
                outcome = dispatch(work, event)
                inbox.record_outcome(session, event, outcome, count_attempt=True)
        except PermanentEventError as error:
            inbox.record_failure(session, event.id, error.reason, count_attempt=True)
            log.warning("event.failed", event_id=event.id, reason=error.reason)
        except Exception as error:
            if is_transient(error):
                raise
            # Left `received`: its own message applies it alone and records what went wrong.
            log.warning("event.batch_skipped", event_id=event.id, error=type(error).__name__)
            continue
        else:
            log.info(
                "event.applied",
                event_id=event.id,
                event_type=event.event_type,
                status=outcome.status,
                batched=True,
            )
        applied += 1
    return applied
