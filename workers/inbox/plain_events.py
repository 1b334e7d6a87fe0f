"""The plain events of a batch applied together: one statement per kind, not per event.

Most events are plain: a `user.created` or `user.updated` that writes its user's row, a
`session.*` that merges its session's row. One by one, each costs a few round trips (the write,
its lookups, its outcome); a batch of them costs a few statements in all: the users' rows
(`user_batches`, the newest snapshot of each user), then the sessions' rows (`session_batches`),
then one `processed` for every applied event.

The rules stay those of the handlers, with the statements doing what the handlers decide one
by one; whatever needs a decision goes the one-by-one way (`workers.inbox.apply`), after these
statements and in the batch's order: an event of a deleted user, a `user.deleted`, an event
that does not validate or carries values the web could not store, onboarding data to migrate,
an address another user holds, a session whose user is not stored. Such an event sends every
event of its user that way, so one user's events are never split between the two ways and are
applied in the order they were stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cpn_sync.clerk import ClerkSession, ClerkUser
from workers.core.unit_of_work import UnitOfWork
from workers.inbox import state
from workers.inbox.apply import Applied
from workers.inbox.context import PROCESSED
from workers.inbox.dispatch import HANDLERS, read_envelope
from workers.users.session_batches import upsert_sessions
from workers.users.session_events import handle_session, session_row
from workers.users.user_batches import distinct_rows, upsert_users
from workers.users.user_events import handle_user_upsert, user_values

# The types whose handler is an upsert: taken from the one mapping of types to handlers.
USER_UPSERTS = frozenset(name for name, run in HANDLERS.items() if run is handle_user_upsert)
SESSION_TYPES = frozenset(name for name, run in HANDLERS.items() if run is handle_session)


@dataclass
class _Batch:
    """The batch's plain rows by event, and the users whose events go one by one."""

    user_rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    session_rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    one_by_one: set[str] = field(default_factory=set)

    def rows_of(self, rows: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        return [row for row in rows.values() if row["clerk_id"] not in self.one_by_one]


def apply_plain(
    work: UnitOfWork, events: list[state.LockedEvent]
) -> tuple[Applied, list[state.LockedEvent]]:
    """Apply the plain events among `events` (locked, with their users' locks held); answer
    them with their outcome, and the other events in their order, to be applied one by one."""
    batch = _Batch()
    for event in events:
        row = _plain_row(event)
        if row is None:
            if event.clerk_user_id:
                batch.one_by_one.add(event.clerk_user_id)
        elif event.event_type in USER_UPSERTS:
            batch.user_rows[event.id] = row
        else:
            batch.session_rows[event.id] = row
    rows, later = distinct_rows(batch.rows_of(batch.user_rows))
    batch.one_by_one.update(row["clerk_id"] for row in later)
    if rows:
        _, not_written = upsert_users(work.session, rows)
        batch.one_by_one.update(
            clerk_id for clerk_id, why in not_written.items() if why.standing != "unchanged"
        )
    batch.one_by_one.update(upsert_sessions(work.session, batch.rows_of(batch.session_rows)))
    applied: Applied = []
    others: list[state.LockedEvent] = []
    for event in events:
        row = batch.user_rows.get(event.id) or batch.session_rows.get(event.id)
        if row is not None and row["clerk_id"] not in batch.one_by_one:
            applied.append((event, PROCESSED))
            if event.id in batch.user_rows:
                work.arrived_users.add(row["clerk_id"])
        else:
            others.append(event)
    state.record_processed(work.session, [event for event, _ in applied])
    return applied, others


def _plain_row(event: state.LockedEvent) -> dict[str, Any] | None:
    """The row a plain event writes (a user's or a session's), or None when the event needs
    the one-by-one way."""
    plain_type = event.event_type in USER_UPSERTS or event.event_type in SESSION_TYPES
    if not plain_type or event.user_deleted or event.onboarding is not None:
        return None
    try:
        envelope, problems = read_envelope(event)
        if problems:
            return None
        if event.event_type in USER_UPSERTS:
            row = user_values(ClerkUser.model_validate(envelope.data), envelope.occurred_at)
        else:
            row = session_row(envelope, ClerkSession.model_validate(envelope.data))
    except Exception:  # the one-by-one way records why
        return None
    if row is None or row["clerk_id"] != event.clerk_user_id:
        return None
    return row
