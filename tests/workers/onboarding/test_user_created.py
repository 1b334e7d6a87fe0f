"""The migration as event processing runs it: a stored `user.created` whose
`unsafe_metadata.onboarding` is present, applied by `apply_event` (the task's body) in this
process; redeliveries with new svix ids; `user.deleted` erasing the migration rows; and the
import meeting Clerk's own events."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cpn_sync.task_contract import CPN_RECOMPUTE_USER
from db.models import DataMigration, User, UserInteraction, UserProfile
from tests.workers.conftest import Processor
from tests.workers.factories import deleted_event, event_row, store_event, user_data, user_event
from tests.workers.onboarding.factories import Requests, entry, new_clerk_id, onboarding
from workers.onboarding.data_migration import migrate_session_data
from workers.onboarding.import_file import USER_DELETED, import_lines


def created_with(clerk_id: str, data: Any) -> dict[str, Any]:
    """A `user.created` from Clerk's example, for `clerk_id`, carrying `data` as onboarding."""
    return user_event(
        "user.created",
        user_data(clerk_id, email=f"{clerk_id}@example.com", unsafe_metadata={"onboarding": data}),
    )


def rows(engine: Engine, clerk_id: str) -> dict[str, Any]:
    """What the database holds for the user: counts, and each migration's status."""
    with Session(engine) as session:
        user_id = session.scalar(select(User.id).where(User.clerk_id == clerk_id))

        def count(model: Any) -> int:
            query = select(func.count()).select_from(model).where(model.clerk_id == clerk_id)
            return session.scalar(query) or 0

        return {
            "user": user_id is not None,
            "profiles": count(UserProfile),
            "interactions": count(UserInteraction),
            "migrations": session.scalars(
                select(DataMigration.status)
                .where(DataMigration.clerk_id == clerk_id)
                .order_by(DataMigration.id)
            ).all(),
        }


def user_id_of(engine: Engine, clerk_id: str) -> int:
    with Session(engine) as session:
        user_id = session.scalar(select(User.id).where(User.clerk_id == clerk_id))
    assert user_id is not None
    return user_id


def recomputes(requests: Requests) -> list[list[Any]]:
    """The recompute requests sent after the commits (through the CPN feature's coalescing)."""
    return [args for name, args in requests() if name == CPN_RECOMPUTE_USER]


class TestUserCreated:
    def test_valid_onboarding_is_migrated_and_a_recompute_follows_the_commit(
        self, worker_tables: Engine, process: Processor, recompute_requests: Requests
    ) -> None:
        clerk_id = new_clerk_id()
        event_id = store_event(
            worker_tables, created_with(clerk_id, onboarding(dataEntry=[entry()] * 3))
        )

        assert process(event_id) == "processed"

        assert rows(worker_tables, clerk_id) == {
            "user": True,
            "profiles": 1,
            "interactions": 3,
            "migrations": ["completed"],
        }
        assert recomputes(recompute_requests) == [[user_id_of(worker_tables, clerk_id)]]

    def test_invalid_onboarding_creates_the_user_and_records_the_failure(
        self, worker_tables: Engine, process: Processor, recompute_requests: Requests
    ) -> None:
        clerk_id = new_clerk_id()
        data = onboarding(profile={"firstName": "Ana", "age": 12}, dataEntry=entry(time=2))
        event_id = store_event(worker_tables, created_with(clerk_id, data))

        assert process(event_id) == "processed"

        assert rows(worker_tables, clerk_id) == {
            "user": True,
            "profiles": 0,
            "interactions": 0,
            "migrations": ["failed"],
        }
        with Session(worker_tables) as session:
            failed = session.scalars(select(DataMigration)).one()
        assert failed.error_message == (
            "profile.age: must be between 18 and 99; "
            "dataEntry.time: must be between 15 and 1440 minutes"
        )
        assert failed.original_data == data
        assert event_row(worker_tables, event_id).last_error is None
        assert recomputes(recompute_requests) == []

    def test_a_redelivery_with_a_new_svix_id_migrates_nothing_more(
        self, worker_tables: Engine, process: Processor, recompute_requests: Requests
    ) -> None:
        clerk_id = new_clerk_id()
        payload = created_with(clerk_id, onboarding(sessionDataId=None, dataEntry=[entry()] * 2))
        first = store_event(worker_tables, payload, svix_id="msg_first")
        second = store_event(worker_tables, payload, svix_id="msg_again")

        assert [process(first), process(second)] == ["processed", "processed"]

        assert rows(worker_tables, clerk_id) == {
            "user": True,
            "profiles": 1,
            "interactions": 2,
            "migrations": ["completed"],
        }
        assert recomputes(recompute_requests) == [[user_id_of(worker_tables, clerk_id)]]


def updated_with(clerk_id: str, data: Any, updated_at: int = 1716883300000) -> dict[str, Any]:
    """A later `user.updated` of the same user carrying `data` as onboarding."""
    payload = created_with(clerk_id, data)
    payload["type"] = "user.updated"
    payload["data"]["updated_at"] = updated_at
    return payload


class TestUserUpdated:
    """The migration runs on the first event of the user that can apply it (DESIGN.md section
    3): a `user.updated` when the `user.created` failed, never arrived, or carried nothing."""

    def test_a_user_updated_migrates_when_the_user_created_carried_no_onboarding(
        self, worker_tables: Engine, process: Processor
    ) -> None:
        clerk_id = new_clerk_id()
        created = store_event(worker_tables, created_with(clerk_id, None))
        updated = store_event(worker_tables, updated_with(clerk_id, onboarding()))

        assert [process(created), process(updated)] == ["processed", "processed"]

        assert rows(worker_tables, clerk_id) == {
            "user": True,
            "profiles": 1,
            "interactions": 1,
            "migrations": ["completed"],
        }

    def test_a_user_updated_migrates_when_the_user_created_failed(
        self, worker_tables: Engine, process: Processor, recompute_requests: Requests
    ) -> None:
        clerk_id = new_clerk_id()
        data = onboarding()
        no_address = created_with(clerk_id, data)
        no_address["data"]["email_addresses"] = []
        created = store_event(worker_tables, no_address)
        assert process(created) == "failed"

        assert process(store_event(worker_tables, updated_with(clerk_id, data))) == "processed"

        assert rows(worker_tables, clerk_id) == {
            "user": True,
            "profiles": 1,
            "interactions": 1,
            "migrations": ["completed"],
        }
        assert recomputes(recompute_requests) == [[user_id_of(worker_tables, clerk_id)]]

    def test_a_user_updated_migrates_when_the_user_created_never_arrived(
        self, worker_tables: Engine, process: Processor
    ) -> None:
        clerk_id = new_clerk_id()

        assert process(store_event(worker_tables, updated_with(clerk_id, onboarding()))) == (
            "processed"
        )

        assert rows(worker_tables, clerk_id)["migrations"] == ["completed"]
        assert rows(worker_tables, clerk_id)["interactions"] == 1

    def test_the_same_session_data_never_migrates_twice(
        self, worker_tables: Engine, process: Processor, recompute_requests: Requests
    ) -> None:
        clerk_id = new_clerk_id()
        data = onboarding(dataEntry=[entry()] * 2)
        events = [
            store_event(worker_tables, created_with(clerk_id, data)),
            store_event(worker_tables, updated_with(clerk_id, data, updated_at=1716883300000)),
            store_event(worker_tables, updated_with(clerk_id, data, updated_at=1716883400000)),
        ]

        assert [process(event_id) for event_id in events] == ["processed"] * 3

        assert rows(worker_tables, clerk_id) == {
            "user": True,
            "profiles": 1,
            "interactions": 2,
            "migrations": ["completed"],
        }
        assert recomputes(recompute_requests) == [[user_id_of(worker_tables, clerk_id)]]


class TestErasure:
    def test_user_deleted_erases_the_users_migration_rows_and_no_one_elses(
        self, worker_tables: Engine, process: Processor
    ) -> None:
        gone, kept = new_clerk_id(), new_clerk_id()
        for clerk_id in (gone, kept):
            process(store_event(worker_tables, created_with(clerk_id, onboarding())))
        with Session(worker_tables) as session:  # a second, failed attempt of the same user
            migrate_session_data(
                session,
                clerk_id=gone,
                user_id=user_id_of(worker_tables, gone),
                onboarding=onboarding(dataEntry=entry(nuts=11)),
            )
            session.commit()
        assert rows(worker_tables, gone)["migrations"] == ["completed", "failed"]

        assert process(store_event(worker_tables, deleted_event(gone))) == "processed"

        assert rows(worker_tables, gone) == {
            "user": False,
            "profiles": 0,
            "interactions": 0,
            "migrations": [],
        }
        assert rows(worker_tables, kept) == {
            "user": True,
            "profiles": 1,
            "interactions": 1,
            "migrations": ["completed"],
        }

    def test_a_late_user_created_after_the_deletion_migrates_nothing(
        self, worker_tables: Engine, process: Processor
    ) -> None:
        clerk_id = new_clerk_id()
        payload = created_with(clerk_id, onboarding())
        process(store_event(worker_tables, payload))
        process(store_event(worker_tables, deleted_event(clerk_id)))

        late = store_event(worker_tables, payload)

        assert process(late) == "ignored"
        assert rows(worker_tables, clerk_id) == {
            "user": False,
            "profiles": 0,
            "interactions": 0,
            "migrations": [],
        }


class TestImportMeetsEvents:
    def _import(self, engine: Engine, line: dict[str, Any]) -> list[str]:
        with Session(engine, expire_on_commit=False) as session:
            report = import_lines(session, [(1, json.dumps(line).encode())], lambda _: None)
        return [failure.reason for failure in report.failures]

    def test_clerks_user_created_fills_in_an_imported_user_and_skips_its_data(
        self, worker_tables: Engine, process: Processor, recompute_requests: Requests
    ) -> None:
        clerk_id = new_clerk_id()
        data = onboarding()
        email = f"{clerk_id}@example.com"
        assert (
            self._import(worker_tables, {"clerk_id": clerk_id, "email": email, "sessionData": data})
            == []
        )

        assert process(store_event(worker_tables, created_with(clerk_id, data))) == "processed"

        with Session(worker_tables) as session:
            user = session.scalars(select(User).where(User.clerk_id == clerk_id)).one()
        assert (user.first_name, user.last_name, user.updated_at is not None) == (
            "John",
            "Doe",
            True,
        )
        assert rows(worker_tables, clerk_id)["migrations"] == ["completed"]
        assert rows(worker_tables, clerk_id)["interactions"] == 1
        assert recomputes(recompute_requests) == []

    def test_the_import_does_not_bring_back_a_deleted_user(
        self, worker_tables: Engine, process: Processor
    ) -> None:
        clerk_id = new_clerk_id()
        process(store_event(worker_tables, created_with(clerk_id, None)))
        process(store_event(worker_tables, deleted_event(clerk_id)))
        line = {"clerk_id": clerk_id, "email": "back@example.com", "sessionData": onboarding()}

        assert self._import(worker_tables, line) == [USER_DELETED]

        assert rows(worker_tables, clerk_id)["user"] is False
