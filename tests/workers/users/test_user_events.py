"""user.created / user.updated / user.deleted, built from Clerk's published examples."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, insert, select, update

from cpn_sync.task_contract import PROCESS_EVENT
from db.models import (
    DataMigration,
    DeletedUser,
    User,
    UserCpnResult,
    UserInteraction,
    UserProfile,
    UserSession,
    WebhookEvent,
)
from tests.workers.conftest import Processor, take_queued
from tests.workers.factories import (
    at_ms,
    deleted_event,
    email_address,
    event_row,
    example,
    session_event,
    store_event,
    user_data,
    user_event,
)
from workers.inbox.cli import events

CLERK_ID = "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"  # the id in Clerk's examples


def user(engine: Engine, clerk_id: str = CLERK_ID) -> User | None:
    with engine.connect() as connection:
        row = connection.execute(select(User).where(User.clerk_id == clerk_id)).one_or_none()
    return None if row is None else User(**row._asdict())


def count(engine: Engine, model: type) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model)) or 0


class TestUserCreated:
    def test_every_mapped_field_is_stored(self, engine: Engine, process: Processor) -> None:
        payload = example("user.created")
        payload["data"]["email_addresses"] = [
            email_address("idn_other", "other@example.com", status="unverified"),
            email_address("idn_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "john@example.com"),
        ]
        event_id = store_event(engine, payload)

        assert process(event_id) == "processed"

        stored = user(engine)
        assert stored is not None
        assert stored.email == "john@example.com"  # the primary by id, not the first
        assert stored.email_verified is True
        assert stored.first_name == "John"
        assert stored.last_name == "Doe"
        assert stored.image_url == "https://img.clerk.com/xxxxxx"
        assert stored.created_at == at_ms(1716883200000)
        assert stored.updated_at == at_ms(1716883200000)
        assert stored.last_sign_in_at == at_ms(1716883200000)
        row = event_row(engine, event_id)
        assert (row.status, row.attempts, row.last_error) == ("processed", 1, None)
        assert row.processed_at is not None

    def test_docs_example_with_its_address_and_millisecond_timestamp(
        self, engine: Engine, process: Processor
    ) -> None:
        event_id = store_event(engine, example("user.created.clerk-docs-overview"))

        assert process(event_id) == "processed"

        stored = user(engine, "user_29w83sxmDNGwOuEthce5gg56FcC")
        assert stored is not None
        assert stored.email == "example@example.org"
        assert stored.email_verified is True
        assert (stored.first_name, stored.last_name) == ("Example", "Example")
        assert stored.image_url == "https://img.clerk.com/xxxxxx"
        assert stored.created_at == at_ms(1654012591514)
        assert stored.updated_at == at_ms(1654012591835)
        assert stored.last_sign_in_at == at_ms(1654012591514)

    def test_first_address_when_the_primary_id_matches_none(
        self, engine: Engine, process: Processor
    ) -> None:
        data = user_data(CLERK_ID, primary_email_address_id="idn_gone")
        data["email_addresses"] = [
            email_address("idn_a", "first@example.com", status=None),
            email_address("idn_b", "second@example.com"),
        ]
        process(store_event(engine, user_event("user.created", data)))

        stored = user(engine)
        assert stored is not None
        assert stored.email == "first@example.com"
        assert stored.email_verified is False  # verification: null

    def test_no_email_address_fails_with_the_reason_and_changes_nothing(
        self, engine: Engine, process: Processor
    ) -> None:
        event_id = store_event(engine, example("user.created"))  # the spec's: no addresses

        assert process(event_id) == "failed"

        row = event_row(engine, event_id)
        assert row.status == "failed"
        assert "user has no email address" in row.last_error
        assert row.attempts == 1
        assert row.processed_at is not None
        assert count(engine, User) == 0

    def test_failed_for_no_email_is_processed_after_the_row_is_fixed_and_replayed(
        self, engine: Engine, process: Processor, redis_url: str
    ) -> None:
        event_id = store_event(engine, example("user.created"), svix_id="msg_no_email")
        assert process(event_id) == "failed"
        fixed = example("user.created")
        fixed["data"]["email_addresses"] = [
            email_address("idn_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "john@example.com")
        ]
        with engine.begin() as connection:
            connection.execute(
                update(WebhookEvent).where(WebhookEvent.id == event_id).values(payload=fixed)
            )

        result = CliRunner().invoke(events, ["replay", "msg_no_email"])

        assert result.exit_code == 0, result.output
        assert "replayed 1 event(s); 1 enqueued" in result.output
        assert event_row(engine, event_id).status == "received"
        assert take_queued(redis_url, "webhooks") == [(PROCESS_EVENT, [event_id])]
        assert process(event_id) == "processed"
        stored = user(engine)
        assert stored is not None
        assert stored.email == "john@example.com"
        row = event_row(engine, event_id)
        assert (row.status, row.attempts, row.last_error) == ("processed", 1, None)

    def test_email_held_by_another_user_waits_for_it_without_quoting_it(
        self, engine: Engine, process: Processor
    ) -> None:
        process(
            store_event(engine, user_event("user.created", user_data("user_a", email="x@e.com")))
        )
        event_id = store_event(
            engine, user_event("user.created", user_data("user_b", email="x@e.com"))
        )

        assert process(event_id) == "waiting"

        row = event_row(engine, event_id)
        assert row.last_error == "waiting for user user_a to give up the email address"
        assert row.waiting_for == "user_a"
        assert row.processed_at is None
        assert not row.erased
        assert user(engine, "user_b") is None

    def test_unmappable_payload_fails_with_the_field_named(
        self, engine: Engine, process: Processor
    ) -> None:
        # An address longer than users.email cannot be stored (a name would be cut instead).
        data = user_data(CLERK_ID, email="J" * 250 + "@e.com")
        event_id = store_event(engine, user_event("user.created", data))

        assert process(event_id) == "failed"

        last_error = event_row(engine, event_id).last_error
        assert "data.email_addresses.0.email_address" in last_error
        assert "at most 255 characters" in last_error
        assert "JJJJ" not in last_error
        assert count(engine, User) == 0

    def test_redelivered_final_event_is_a_no_op(self, engine: Engine, process: Processor) -> None:
        event_id = store_event(
            engine, user_event("user.created", user_data(CLERK_ID, email="j@e.com"))
        )
        assert process(event_id) == "processed"

        assert process(event_id) == "already processed"

        row = event_row(engine, event_id)
        assert (row.status, row.attempts) == ("processed", 1)


class TestUserUpdated:
    def test_newer_update_replaces_the_fields(self, engine: Engine, process: Processor) -> None:
        process(
            store_event(engine, user_event("user.created", user_data(CLERK_ID, email="j@e.com")))
        )
        payload = example("user.updated")
        payload["data"]["email_addresses"] = [
            email_address("idn_2g7np7Hrk0SN6kj5EDMLDaKNL0S", "new@example.com", "unverified")
        ]

        assert process(store_event(engine, payload)) == "processed"

        stored = user(engine)
        assert stored is not None
        assert stored.email == "new@example.com"
        assert stored.email_verified is False
        assert stored.last_name == "Doe Updated"
        assert stored.image_url == "https://img.clerk.com/yyyyy"
        assert stored.updated_at == at_ms(1716883500000)
        assert stored.last_sign_in_at == at_ms(1716883400000)
        assert stored.created_at == at_ms(1716883200000)

    def test_older_update_changes_nothing(self, engine: Engine, process: Processor) -> None:
        newer = user_data(CLERK_ID, email="new@e.com", last_name="New", updated_at=2_000)
        older = user_data(CLERK_ID, email="old@e.com", last_name="Old", updated_at=1_000)
        process(store_event(engine, user_event("user.updated", newer)))

        event_id = store_event(engine, user_event("user.updated", older))
        assert process(event_id) == "processed"

        stored = user(engine)
        assert stored is not None
        assert (stored.email, stored.last_name) == ("new@e.com", "New")
        assert stored.updated_at == at_ms(2_000)

    def test_update_before_create_creates_the_user(
        self, engine: Engine, process: Processor
    ) -> None:
        data = user_data(CLERK_ID, email="j@e.com", updated_at=5_000)
        assert process(store_event(engine, user_event("user.updated", data))) == "processed"
        created = user_data(CLERK_ID, email="j@e.com", first_name="Stale", updated_at=1_000)
        assert process(store_event(engine, user_event("user.created", created))) == "processed"

        stored = user(engine)
        assert stored is not None
        assert stored.first_name == "John"


class TestUserDeleted:
    def _user_with_everything(self, engine: Engine, process: Processor) -> int:
        process(
            store_event(engine, user_event("user.created", user_data(CLERK_ID, email="j@e.com")))
        )
        session = session_event("session.created", "sess_1", CLERK_ID)
        process(store_event(engine, session))
        stored = user(engine)
        assert stored is not None
        with engine.begin() as connection:
            connection.execute(
                insert(UserProfile).values(user_id=stored.id, clerk_id=CLERK_ID, first_name="Ana")
            )
            connection.execute(
                insert(UserInteraction).values(
                    user_id=stored.id,
                    clerk_id=CLERK_ID,
                    interaction_date=dt.date(2026, 1, 1),
                    cost=Decimal("10"),
                    time_minutes=60,
                    nuts=1,
                )
            )
            connection.execute(insert(UserCpnResult).values(user_id=stored.id, clerk_id=CLERK_ID))
            connection.execute(
                insert(DataMigration).values(
                    migration_name="onboarding_v1",
                    clerk_id=CLERK_ID,
                    user_id=stored.id,
                    migration_type="session_to_user",
                    original_data={"profile": {"firstName": "Ana"}},
                )
            )
        return stored.id

    def test_deletes_cascades_erases_and_leaves_a_tombstone(
        self, engine: Engine, process: Processor
    ) -> None:
        self._user_with_everything(engine, process)
        other = store_event(
            engine, user_event("user.created", user_data("user_other", email="o@e.com"))
        )
        process(other)

        event_id = store_event(engine, example("user.deleted"))
        assert process(event_id) == "processed"

        assert user(engine) is None
        for model in (UserProfile, UserInteraction, UserCpnResult, UserSession, DataMigration):
            assert count(engine, model) == 0, model.__name__
        with engine.connect() as connection:
            tombstones = connection.scalars(select(DeletedUser.clerk_id)).all()
            events = connection.execute(
                select(
                    WebhookEvent.clerk_user_id,
                    WebhookEvent.payload.is_(None).label("erased"),
                    WebhookEvent.redacted_at,
                )
            ).all()
        assert tombstones == [CLERK_ID]
        mine = [e for e in events if e.clerk_user_id == CLERK_ID]
        assert len(mine) == 3  # rows are kept ...
        assert all(e.erased and e.redacted_at is not None for e in mine)  # ... erased
        others = [e for e in events if e.clerk_user_id == "user_other"]
        assert not others[0].erased
        assert user(engine, "user_other") is not None

    def test_no_later_event_brings_the_user_back(self, engine: Engine, process: Processor) -> None:
        process(
            store_event(engine, user_event("user.created", user_data(CLERK_ID, email="j@e.com")))
        )
        process(store_event(engine, example("user.deleted")))

        late = [
            user_event("user.updated", user_data(CLERK_ID, email="j@e.com", updated_at=9**12)),
            user_event("user.created", user_data(CLERK_ID, email="j@e.com")),
            session_event("session.created", "sess_late", CLERK_ID),
        ]
        for payload in late:
            event_id = store_event(engine, payload)
            assert process(event_id) == "ignored"
            row = event_row(engine, event_id)
            assert "was deleted" in row.last_error
            assert row.erased  # a late event's personal data is not kept either

        assert user(engine) is None
        assert count(engine, UserSession) == 0

    def test_delete_of_an_unknown_user_still_leaves_a_tombstone(
        self, engine: Engine, process: Processor
    ) -> None:
        assert process(store_event(engine, example("user.deleted"))) == "processed"

        event_id = store_event(
            engine, user_event("user.created", user_data(CLERK_ID, email="j@e.com"))
        )
        assert process(event_id) == "ignored"
        assert user(engine) is None

    def test_waiting_session_events_are_released_to_end_as_ignored(
        self, engine: Engine, process: Processor
    ) -> None:
        waiting = store_event(engine, session_event("session.created", "sess_w", CLERK_ID))
        assert process(waiting) == "waiting"

        process(store_event(engine, deleted_event(CLERK_ID)))
        assert process.released() == [waiting]
        process.drain()

        assert event_row(engine, waiting).status == "ignored"


class TestOnboardingHook:
    def test_onboarding_runs_for_a_user_created_with_onboarding_and_its_tasks_follow_the_commit(
        self, engine: Engine, process: Processor, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from workers.inbox.context import EventContext

        calls: list[tuple[int, str, str]] = []

        def migrate(ctx: EventContext, user_id: int, clerk_user: Any, onboarding: Any) -> None:
            calls.append((user_id, clerk_user.id, onboarding))
            ctx.after_commit("migrations.from_onboarding", [user_id])

        monkeypatch.setattr("workers.users.user_events.migrate_onboarding", migrate)
        onboarding = {"sessionDataId": "ssd_1", "profile": {"firstName": "Ana"}}
        with_data = user_data(CLERK_ID, email="j@e.com", unsafe_metadata={"onboarding": onboarding})
        without = user_data("user_plain", email="p@e.com")

        process(store_event(engine, user_event("user.created", with_data)))
        process(store_event(engine, user_event("user.created", without)))
        process(store_event(engine, user_event("user.updated", with_data)))

        stored = user(engine)
        assert stored is not None
        # The user.updated calls it too (the migration itself runs once per session data id),
        # and the onboarding arrives as its stored JSON text: the onboarding feature decodes it.
        assert [(user_id, clerk_id, orjson.loads(text)) for user_id, clerk_id, text in calls] == [
            (stored.id, CLERK_ID, onboarding)
        ] * 2
        assert ("migrations.from_onboarding", [stored.id]) in process.follow_ups
