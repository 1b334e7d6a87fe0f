"""The web's message: the events stored within a few milliseconds, applied in one transaction,
each with its own outcome."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine, func, select, text

from db.models import User, UserSession
from tests.workers.conftest import Processor, status_counts
from tests.workers.factories import (
    deleted_event,
    event_row,
    example,
    session_event,
    store_event,
    user_data,
    user_event,
)
from tests.workers.onboarding.factories import onboarding

LATER = 1_716_883_200_000 + 60_000


def store_user(engine: Engine, clerk_id: str, **fields: Any) -> int:
    return store_event(
        engine,
        user_event("user.created", user_data(clerk_id, email=f"{clerk_id}@e.com", **fields)),
    )


class TestBatch:
    def test_each_event_gets_its_own_outcome_and_one_bad_event_spoils_nothing(
        self, engine: Engine, process: Processor
    ) -> None:
        users = [store_user(engine, f"u{n}") for n in range(3)]
        no_email = store_event(engine, example("user.created"))
        session = store_event(engine, session_event("session.created", "sess_b1", "u1"))
        unhandled = store_event(engine, example("email.created"))

        statuses = process.batch([*users, no_email, session, unhandled])

        assert statuses == {
            **dict.fromkeys(users, "processed"),
            no_email: "failed",
            session: "processed",
            unhandled: "ignored",
        }
        for event_id in [*users, no_email, session, unhandled]:
            row = event_row(engine, event_id)
            assert row.attempts == 1
            assert row.processed_at is not None
        assert event_row(engine, no_email).last_error.startswith("user has no email address")
        with engine.connect() as connection:
            emails = dict(connection.execute(select(User.clerk_id, User.email)).all())
            owner = connection.scalar(
                select(User.clerk_id)
                .join(UserSession, UserSession.user_id == User.id)
                .where(UserSession.session_id == "sess_b1")
            )
        assert emails == {"u0": "u0@e.com", "u1": "u1@e.com", "u2": "u2@e.com"}
        assert owner == "u1"

    def test_a_session_stored_before_its_user_is_applied_with_it_in_one_batch(
        self, engine: Engine, process: Processor
    ) -> None:
        # Alone, a session event without `data.user` waits for its user; in a batch with its
        # user's event, the user is written first and the session needs no second message.
        payload = session_event("session.created", "sess_b2", "u9")
        del payload["data"]["user"]
        session = store_event(engine, payload)
        arrives = store_user(engine, "u9")

        assert process.batch([session, arrives]) == {session: "processed", arrives: "processed"}
        assert process.released() == []
        with engine.connect() as connection:
            owner = connection.scalar(
                select(User.clerk_id)
                .join(UserSession, UserSession.user_id == User.id)
                .where(UserSession.session_id == "sess_b2")
            )
        assert owner == "u9"

    def test_a_session_that_waits_is_released_by_its_user_in_the_same_batch(
        self, engine: Engine, process: Processor
    ) -> None:
        # The user's event goes one by one (it carries onboarding data to migrate), and so do
        # all its user's events, in their order: the session waits, then is released.
        payload = session_event("session.created", "sess_b3", "u8")
        del payload["data"]["user"]
        waiting = store_event(engine, payload)
        arrives = store_user(engine, "u8", unsafe_metadata={"onboarding": onboarding()})

        assert process.batch([waiting, arrives]) == {waiting: "waiting", arrives: "processed"}
        assert process.released() == [waiting]  # sent again only after the commit
        process.drain()
        assert event_row(engine, waiting).status == "processed"

    def test_an_event_after_its_users_deletion_in_the_same_batch_does_not_bring_the_user_back(
        self, engine: Engine, process: Processor
    ) -> None:
        created = store_user(engine, "u7")
        deleted = store_event(engine, deleted_event("u7"))
        late_update = store_event(
            engine,
            user_event("user.updated", user_data("u7", email="back@e.com", updated_at=LATER)),
        )

        statuses = process.batch([created, deleted, late_update])

        assert statuses == {created: "processed", deleted: "processed", late_update: "ignored"}
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(User)) == 0
        assert event_row(engine, late_update).payload is None  # redacted with the user's others

    def test_final_events_are_left_alone_and_unknown_ids_are_skipped(
        self, engine: Engine, process: Processor
    ) -> None:
        done = store_event(engine, example("email.created"), status="processed")
        fresh = store_user(engine, "u1")

        statuses = process.batch([done, fresh, 987654321])

        assert statuses == {done: "already processed", fresh: "processed"}
        assert event_row(engine, done).attempts == 0
        assert process.batch([done, fresh]) == {
            done: "already processed",
            fresh: "already processed",
        }

    def test_a_batch_waits_for_a_user_another_task_is_applying(self, engine: Engine) -> None:
        """Blocking user locks, taken in sorted order: the batch waits instead of skipping."""
        first, second = store_user(engine, "u1"), store_user(engine, "u2")
        result: dict[int, str] = {}
        with engine.connect() as other:
            other.execute(text("SELECT pg_advisory_xact_lock(1, hashtext('u2'))"))
            worker = threading.Thread(
                target=lambda: result.update(Processor().batch([first, second]))
            )
            worker.start()
            time.sleep(0.5)
            assert status_counts(engine) == {"received": 2}  # nothing committed while it waits
            other.rollback()
        worker.join(10)
        assert result == {first: "processed", second: "processed"}

    def test_two_batches_over_the_same_users_in_opposite_orders_do_not_deadlock(
        self, engine: Engine
    ) -> None:
        events = [store_user(engine, f"u{n}") for n in range(20)]
        updates = [
            store_event(
                engine,
                user_event(
                    "user.updated", user_data(f"u{n}", email=f"new{n}@e.com", updated_at=LATER)
                ),
            )
            for n in range(20)
        ]
        batches = [events + updates, list(reversed(updates + events))]
        results: list[dict[int, str]] = []
        threads = [
            threading.Thread(target=lambda ids=ids: results.append(Processor().batch(ids)))
            for ids in batches
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 2
        assert status_counts(engine) == {"processed": 40}
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(User)) == 20
            emails = set(connection.scalars(select(User.email)))
        assert emails == {f"new{n}@e.com" for n in range(20)}
