"""Whatever an end user puts into `unsafe_metadata` (it is written from the browser) never
affects another user's events and never prevents the user's own rows: only that user's
onboarding migration fails, with a reason (DESIGN.md section 3)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from click.testing import CliRunner
from sqlalchemy import Engine, select, text

from cpn_sync.cli import main
from db.models import DataMigration, User, UserSession, WebhookEvent
from tests.workers.conftest import Processor
from tests.workers.factories import (
    clerk_user_id,
    event_row,
    session_event,
    user_data,
    user_event,
)

PLACEHOLDER = "__hostile_value__"


def nested(depth: int) -> str:
    """About 2 bytes a level: 1500 levels fit in Clerk's 8 KB metadata limit."""
    return "[" * depth + "]" * depth


def store_raw(engine: Engine, payload: dict[str, Any], hostile: str | None = None) -> int:
    """Store an event as the web does, its JSON text given as is: `hostile` replaces the
    string PLACEHOLDER, so values no JSON encoder would write (1500 levels deep) arrive too."""
    body = orjson.dumps(payload).decode()
    if hostile is not None:
        body = body.replace(f'"{PLACEHOLDER}"', hostile)
    with engine.begin() as connection:
        event_id: int = connection.execute(
            text(
                "INSERT INTO webhook_events (svix_id, event_type, clerk_user_id, payload) "
                "VALUES (:svix_id, :event_type, :clerk_user_id, CAST(:payload AS jsonb)) "
                "RETURNING id"
            ),
            {
                "svix_id": f"msg_{uuid.uuid4().hex}",
                "event_type": payload["type"],
                "clerk_user_id": clerk_user_id(payload),
                "payload": body,
            },
        ).scalar_one()
    return event_id


def ordinary_user(engine: Engine, clerk_id: str) -> int:
    return store_raw(
        engine, user_event("user.created", user_data(clerk_id, email=f"{clerk_id}@e.com"))
    )


def hostile_user(engine: Engine, clerk_id: str, event_type: str, metadata: str) -> int:
    data = user_data(clerk_id, email=f"{clerk_id}@e.com", unsafe_metadata=PLACEHOLDER)
    return store_raw(engine, user_event(event_type, data), metadata)


def outcome(engine: Engine, event_id: int) -> tuple[str, str | None]:
    """Status and last error, the payload left alone (a test's decoder is no better)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(WebhookEvent.status, WebhookEvent.last_error).where(WebhookEvent.id == event_id)
        ).one()
    return row.status, row.last_error


def stored_users(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(User.clerk_id)).all())


class TestDeepNesting:
    def test_a_batch_with_one_deep_payload_applies_every_other_users_event(
        self, engine: Engine, process: Processor
    ) -> None:
        innocent = [ordinary_user(engine, f"u{n}") for n in range(5)]
        hostile = hostile_user(engine, "evil", "user.updated", '{"x": ' + nested(1500) + "}")

        statuses = process.batch([*innocent[:2], hostile, *innocent[2:]])

        assert statuses == {event_id: "processed" for event_id in [*innocent, hostile]}
        assert stored_users(engine) == {"u0", "u1", "u2", "u3", "u4", "evil"}

    def test_deep_onboarding_fails_only_the_users_migration(
        self, engine: Engine, process: Processor
    ) -> None:
        innocent = ordinary_user(engine, "u1")
        metadata = '{"onboarding": {"profile": ' + nested(1500) + "}}"
        hostile = hostile_user(engine, "evil", "user.created", metadata)

        assert process.batch([hostile, innocent]) == {hostile: "processed", innocent: "processed"}
        assert stored_users(engine) == {"u1", "evil"}
        with engine.connect() as connection:
            migration = connection.execute(select(DataMigration)).one()
        assert migration.clerk_id == "evil"
        assert migration.status == "failed"
        assert "deeper than" in migration.error_message

    def test_past_the_decoders_limit_inside_the_onboarding_fails_it_with_a_reason(
        self, engine: Engine, process: Processor
    ) -> None:
        metadata = '{"onboarding": {"profile": ' + nested(1030) + "}}"
        hostile = hostile_user(engine, "evil", "user.created", metadata)

        assert process(hostile) == "processed"
        with engine.connect() as connection:
            migration = connection.execute(select(DataMigration)).one()
        assert migration.status == "failed"
        assert "deeper than" in migration.error_message

    def test_a_session_event_carrying_deep_metadata_still_writes_its_session(
        self, engine: Engine, process: Processor
    ) -> None:
        innocent = ordinary_user(engine, "u1")
        payload = session_event(
            "session.created",
            "sess_deep",
            "evil",
            user={**user_data("evil", email="evil@e.com"), "unsafe_metadata": PLACEHOLDER},
        )
        hostile = store_raw(engine, payload, '{"x": ' + nested(1500) + "}")

        assert process.batch([innocent, hostile]) == {innocent: "processed", hostile: "processed"}
        with engine.connect() as connection:
            sessions = connection.scalars(select(UserSession.session_id)).all()
        assert sessions == ["sess_deep"]

    def test_a_released_event_is_not_failed_by_a_deep_one_in_the_backlog(
        self, engine: Engine, process: Processor
    ) -> None:
        hostile = hostile_user(engine, "evil", "user.updated", '{"x": ' + nested(1500) + "}")
        innocent = ordinary_user(engine, "u1")
        process.batch_size = 50  # the single-event path takes the backlog along

        assert process(innocent) == "processed"
        assert outcome(engine, hostile) == ("processed", None)
        assert outcome(engine, innocent) == ("processed", None)

    def test_events_list_and_show_do_not_decode_payloads(self, engine: Engine) -> None:
        hostile_user(engine, "evil", "user.updated", '{"x": ' + nested(1500) + "}")
        svix_id = event_row(engine, ordinary_user(engine, "u1")).svix_id

        listed = CliRunner().invoke(main, ["events", "list"])
        shown = CliRunner().invoke(main, ["events", "show", svix_id, "--payload"])

        assert listed.exit_code == 0, listed.output
        assert "2 event(s)" in listed.output
        assert shown.exit_code == 0, shown.output
