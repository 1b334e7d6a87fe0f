"""An email address that another stored user still holds is an ordering problem, not a failure
(DESIGN.md section 3): the event is `waiting` for that holder and is released when the holder
changes its address or is deleted; two users exchanging addresses both end applied."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, insert, select, text, update

from cpn_sync.task_contract import PROCESS_EVENT, SWEEP_INBOX
from db.models import DeletedUser, User
from tests.workers.conftest import Processor
from tests.workers.factories import (
    deleted_event,
    event_row,
    session_event,
    store_event,
    user_data,
    user_event,
)
from workers.core.schedule import run_scheduled
from workers.inbox.sweep import sweep_inbox


def created(clerk_id: str, email: str, updated_at: int = 1_000) -> dict[str, Any]:
    return user_event("user.created", user_data(clerk_id, email=email, updated_at=updated_at))


def updated(clerk_id: str, email: str, updated_at: int) -> dict[str, Any]:
    return user_event("user.updated", user_data(clerk_id, email=email, updated_at=updated_at))


def emails(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(select(User.clerk_id, User.email)).all()
    return {row.clerk_id: row.email for row in rows}


def sweep(process: Processor) -> dict[str, int] | None:
    return run_scheduled(SWEEP_INBOX, 60, sweep_inbox, publish=process.publish)


class TestAnAddressStillHeld:
    def test_a_new_account_waits_for_the_deletion_of_the_old_one(
        self, engine: Engine, process: Processor
    ) -> None:
        """A person deletes an account and signs up again with the same address; the new
        `user.created` arrives before the old `user.deleted`."""
        assert process(store_event(engine, created("user_old", "ana@e.com"))) == "processed"
        new_account = store_event(engine, created("user_new", "ana@e.com", updated_at=5_000))

        assert process(new_account) == "waiting"
        assert event_row(engine, new_account).waiting_for == "user_old"

        assert process(store_event(engine, deleted_event("user_old"))) == "processed"
        assert process.released() == [new_account]
        process.drain()

        row = event_row(engine, new_account)
        assert (row.status, row.last_error, row.waiting_for) == ("processed", None, None)
        assert emails(engine) == {"user_new": "ana@e.com"}

    def test_released_when_the_holder_changes_its_address(
        self, engine: Engine, process: Processor
    ) -> None:
        process(store_event(engine, created("user_a", "x@e.com")))
        waiting = store_event(engine, created("user_b", "x@e.com", updated_at=3_000))
        assert process(waiting) == "waiting"

        assert process(store_event(engine, updated("user_a", "y@e.com", 2_000))) == "processed"
        process.drain()

        assert event_row(engine, waiting).status == "processed"
        assert emails(engine) == {"user_a": "y@e.com", "user_b": "x@e.com"}

    def test_two_users_exchanging_addresses_both_end_applied(
        self, engine: Engine, process: Processor
    ) -> None:
        process(store_event(engine, created("user_a", "a@e.com")))
        process(store_event(engine, created("user_b", "b@e.com")))
        a_takes_b = store_event(engine, updated("user_a", "b@e.com", 3_000))
        b_takes_a = store_event(engine, updated("user_b", "a@e.com", 2_000))

        assert process(a_takes_b) == "waiting"
        assert process(b_takes_a) == "processed"
        process.drain()

        assert [event_row(engine, e).status for e in (a_takes_b, b_takes_a)] == ["processed"] * 2
        assert emails(engine) == {"user_a": "b@e.com", "user_b": "a@e.com"}

    def test_a_session_whose_snapshot_address_is_held_waits_for_the_holder(
        self, engine: Engine, process: Processor
    ) -> None:
        process(store_event(engine, created("user_old", "ana@e.com")))
        snapshot = user_data("user_new", email="ana@e.com", updated_at=5_000)
        session = store_event(
            engine, session_event("session.created", "sess_new", "user_new", user=snapshot)
        )

        assert process(session) == "waiting"
        assert event_row(engine, session).waiting_for == "user_old"
        process(store_event(engine, deleted_event("user_old")))
        process.drain()

        assert event_row(engine, session).status == "processed"
        assert emails(engine) == {"user_new": "ana@e.com"}


class TestTheSweeperReleases:
    """When the message of a release was lost, the sweeper sends it: only once the holder let
    go of the address."""

    def test_only_once_the_holder_let_go(self, engine: Engine, process: Processor) -> None:
        process(store_event(engine, created("user_a", "x@e.com")))
        process(store_event(engine, created("user_c", "z@e.com")))
        waits_for_a = store_event(engine, created("user_b", "x@e.com", updated_at=3_000))
        waits_for_c = store_event(engine, created("user_d", "z@e.com", updated_at=3_000))
        assert [process(waits_for_a), process(waits_for_c)] == ["waiting", "waiting"]

        counts = sweep(process)
        assert counts is not None
        assert counts["released"] == 0

        with engine.begin() as connection:  # the holders' events applied, their releases lost
            connection.execute(
                update(User).where(User.clerk_id == "user_a").values(email="y@e.com")
            )
            connection.execute(delete(User).where(User.clerk_id == "user_c"))
            connection.execute(insert(DeletedUser).values(clerk_id="user_c"))
            connection.execute(text("DELETE FROM scheduled_job_runs"))  # the next tick
        counts = sweep(process)

        assert counts is not None
        assert counts["released"] == 2
        assert sorted(process.follow_ups) == sorted(
            [(PROCESS_EVENT, [waits_for_a]), (PROCESS_EVENT, [waits_for_c])]
        )
        process.drain()
        assert [event_row(engine, e).status for e in (waits_for_a, waits_for_c)] == [
            "processed",
            "processed",
        ]
        assert emails(engine) == {"user_a": "y@e.com", "user_b": "x@e.com", "user_d": "z@e.com"}


class TestInOneBatch:
    def test_an_exchange_and_a_re_created_account_in_one_batch(
        self, engine: Engine, process: Processor
    ) -> None:
        for clerk_id, email in (("user_a", "a@e.com"), ("user_b", "b@e.com")):
            process(store_event(engine, created(clerk_id, email)))
        process(store_event(engine, created("user_old", "ana@e.com")))
        batch = [
            store_event(engine, updated("user_a", "b@e.com", 3_000)),
            store_event(engine, created("user_new", "ana@e.com", updated_at=5_000)),
            store_event(engine, updated("user_b", "a@e.com", 2_000)),
            store_event(engine, deleted_event("user_old")),
        ]

        process.batch(batch)
        process.drain()

        assert [event_row(engine, e).status for e in batch] == ["processed"] * 4
        assert emails(engine) == {
            "user_a": "b@e.com",
            "user_b": "a@e.com",
            "user_new": "ana@e.com",
        }
