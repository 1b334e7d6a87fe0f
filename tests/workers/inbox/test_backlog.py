"""Several events per transaction when a backlog waits, each with its own outcome."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select, text

from db.models import DeletedUser, User, WebhookEvent
from tests.workers.conftest import Processor, status_counts
from tests.workers.factories import event_row, example, store_event, user_data, user_event


def store_user(engine: Engine, clerk_id: str) -> int:
    return store_event(
        engine, user_event("user.created", user_data(clerk_id, email=f"{clerk_id}@e.com"))
    )


class TestBacklog:
    def test_one_task_applies_the_waiting_backlog_each_with_its_outcome(
        self, engine: Engine
    ) -> None:
        first = store_user(engine, "u0")
        others = [store_user(engine, f"u{n}") for n in range(1, 6)]
        no_email = store_event(engine, example("user.created"))
        unhandled = store_event(engine, example("email.created"))
        process = Processor(batch_size=50)

        assert process(first) == "processed"

        assert status_counts(engine) == {"processed": 6, "failed": 1, "ignored": 1}
        for event_id in others:
            row = event_row(engine, event_id)
            assert (row.status, row.attempts) == ("processed", 1)
        failed = event_row(engine, no_email)
        assert failed.last_error.startswith("user has no email address")
        assert failed.attempts == 1
        assert event_row(engine, unhandled).last_error == "event type email.created is not handled"
        # Their own messages arrive later and find them done.
        assert process(others[0]) == "already processed"
        with engine.connect() as connection:
            assert len(connection.scalars(select(User.clerk_id)).all()) == 6

    def test_batch_size_bounds_the_transaction(self, engine: Engine) -> None:
        ids = [store_user(engine, f"u{n}") for n in range(10)]

        Processor(batch_size=4)(ids[0])

        assert status_counts(engine) == {"processed": 4, "received": 6}

    def test_events_whose_user_or_row_is_taken_are_left_for_their_own_message(
        self, engine: Engine
    ) -> None:
        first = store_user(engine, "u0")
        user_busy = store_user(engine, "u1")
        row_busy = store_user(engine, "u2")
        free = store_user(engine, "u3")
        with engine.connect() as other:
            other.execute(text("SELECT pg_advisory_xact_lock(1, hashtext('u1'))"))
            other.execute(
                select(WebhookEvent.id).where(WebhookEvent.id == row_busy).with_for_update()
            )

            Processor(batch_size=50)(first)

            other.rollback()
        statuses = {i: event_row(engine, i).status for i in (first, user_busy, row_busy, free)}
        assert statuses == {
            first: "processed",
            user_busy: "received",
            row_busy: "received",
            free: "processed",
        }


class TestSavepoint:
    def test_a_failed_part_takes_its_writes_and_follow_ups_with_it(self, engine: Engine) -> None:
        from workers.core.unit_of_work import unit_of_work

        sent: list[tuple[str, list[object]]] = []
        with unit_of_work(lambda name, args: sent.append((name, args))) as work:
            work.after_commit("kept", [1])
            try:
                with work.savepoint():
                    work.session.execute(insert(DeletedUser).values(clerk_id="gone"))
                    work.after_commit("dropped", [2])
                    raise RuntimeError("this part fails")
            except RuntimeError:
                pass
            work.session.execute(insert(DeletedUser).values(clerk_id="kept"))

        assert sent == [("kept", [1])]
        with engine.connect() as connection:
            assert connection.scalars(select(DeletedUser.clerk_id)).all() == ["kept"]
