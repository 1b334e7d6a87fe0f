"""Apply a backlog in batches: more `received` events in the transaction of the one a task
was sent for, each with its own outcome.

Under load the commit (a disk flush) is most of an event's cost; sharing it among up to
EVENT_BATCH_SIZE events is what lets a worker keep up with a burst. The messages of events
applied here find them final and return at once. An event is taken only when its row is not
locked by another task and its user's lock is free at once (try-locks never wait, so two
batching workers cannot deadlock); each runs in a savepoint, so one that fails does not undo
the others (`workers.inbox.apply`). An event that fails is recorded `failed` with its reason,
as its own message would record it.
"""

from __future__ import annotations

from workers.core.locks import try_lock_users
from workers.core.unit_of_work import UnitOfWork
from workers.inbox import state
from workers.inbox.apply import Applied, apply_in_savepoint


def apply_backlog(work: UnitOfWork, limit: int) -> Applied:
    """Apply up to `limit` more `received` events, oldest first; answer those applied (an event
    that failed is recorded `failed` and left out)."""
    session = work.session
    events = state.lock_backlog(session, limit)
    users = sorted({event.clerk_user_id for event in events if event.clerk_user_id})
    taken = try_lock_users(session, users)
    free_users = {user for user, free in zip(users, taken, strict=True) if free}
    applied: Applied = []
    for event in state.as_applied(session, events):
        if event.clerk_user_id and event.clerk_user_id not in free_users:
            continue  # another task is applying this user's events: its own message will
        outcome = apply_in_savepoint(work, event)
        if outcome is not None:
            applied.append((event, outcome))
    return applied
