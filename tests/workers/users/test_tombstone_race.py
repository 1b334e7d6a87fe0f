"""A `user.deleted` that commits after an event's tombstone was read, but before the event is
applied, still keeps the user deleted (DESIGN.md section 3: the tombstone is checked where the
user row is written).

The race is made deterministic by committing the deletion, from another connection, at the
moment between the read and the write: in the backlog path between `lock_backlog` (which reads
the tombstone) and `try_lock_users`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, insert, select

from db.models import DeletedUser, User, UserSession
from tests.workers.conftest import Processor
from tests.workers.factories import (
    event_row,
    session_event,
    store_event,
    user_data,
    user_event,
)
from workers.core import locks
from workers.core.engine import new_session
from workers.core.unit_of_work import unit_of_work
from workers.inbox import backlog, state
from workers.inbox.apply import apply_in_savepoint

CLERK_ID = "user_late"


def delete_user_elsewhere(engine: Engine, clerk_id: str) -> None:
    """What a `user.deleted` commits (the parts that matter here), from another connection:
    the tombstone, and the user row gone. The late event was stored after that deletion had
    redacted the user's payloads, so its own payload is still there."""
    with engine.begin() as connection:
        connection.execute(insert(DeletedUser).values(clerk_id=clerk_id))
        connection.execute(delete(User).where(User.clerk_id == clerk_id))


def users_named(engine: Engine, clerk_id: str) -> int:
    with engine.connect() as connection:
        found = connection.scalar(
            select(func.count()).select_from(User).where(User.clerk_id == clerk_id)
        )
    return found or 0


def sessions(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(UserSession)) or 0


LATE_EVENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "user.updated": lambda: user_event(
        "user.updated", user_data(CLERK_ID, email="late@example.com", updated_at=9**12)
    ),
    "session.created with an address": lambda: session_event(
        "session.created",
        "sess_late",
        CLERK_ID,
        user=user_data(CLERK_ID, email="late@example.com", updated_at=9**12),
    ),
    "session.created without an address": lambda: session_event(
        "session.created", "sess_late", CLERK_ID, user=user_data(CLERK_ID)
    ),
}


class TestDeletionBetweenTheTombstoneReadAndTheWrite:
    @pytest.mark.parametrize("kind", sorted(LATE_EVENTS))
    def test_backlog_event_of_a_user_deleted_meanwhile_is_ignored_and_erased(
        self,
        engine: Engine,
        process: Processor,
        monkeypatch: pytest.MonkeyPatch,
        kind: str,
    ) -> None:
        created = user_event("user.created", user_data(CLERK_ID, email="late@example.com"))
        assert process(store_event(engine, created)) == "processed"
        late_id = store_event(engine, LATE_EVENTS[kind]())

        real_try_lock = locks.try_lock_users

        def deletion_commits_first(session: Any, clerk_ids: list[str]) -> list[bool]:
            delete_user_elsewhere(engine, CLERK_ID)
            return real_try_lock(session, clerk_ids)

        monkeypatch.setattr(backlog, "try_lock_users", deletion_commits_first)
        with new_session() as session, unit_of_work(process.publish, session) as work:
            applied = backlog.apply_backlog(work, 10)

        assert [(event.id, outcome.status) for event, outcome in applied] == [(late_id, "ignored")]
        row = event_row(engine, late_id)
        assert row.status == "ignored"
        assert "was deleted" in row.last_error
        assert row.erased  # its email address and names are not kept either
        assert users_named(engine, CLERK_ID) == 0
        assert sessions(engine) == 0

    def test_an_event_read_before_the_tombstone_cannot_write_the_user(
        self, engine: Engine, process: Processor
    ) -> None:
        """Any path that read the event before the deletion committed (a batch locking a user
        late, the backlog): the user upsert itself refuses a tombstoned id."""
        late_id = store_event(
            engine,
            user_event("user.created", user_data(CLERK_ID, email="late@example.com")),
        )
        with new_session() as session, unit_of_work(process.publish, session) as work:
            event = state.lock_event(session, late_id)
            assert event is not None
            assert not event.user_deleted
            delete_user_elsewhere(engine, CLERK_ID)
            outcome = apply_in_savepoint(work, event)

        assert outcome is not None
        assert outcome.status == "ignored"
        row = event_row(engine, late_id)
        assert (row.status, row.erased) == ("ignored", True)
        assert users_named(engine, CLERK_ID) == 0
