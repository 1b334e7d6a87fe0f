"""Whatever an end user puts into `unsafe_metadata` (it is written from the browser) never
affects another user's events and never prevents the user's own rows: only that user's
onboarding migration fails, with a reason (DESIGN.md section 3)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from celery import Celery
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from cpn_sync.cli import main
from db.models import DataMigration, User, UserSession, WebhookEvent
from tests.worker_process import WorkerProcess
from tests.workers.conftest import (
    Processor,
    running,
    send_as_web,
    status_counts,
    truncate_all,
    wait_until,
)
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


# What an end user can put into a verified event, as JSON text for PLACEHOLDER's place in
# `data.unsafe_metadata` (or, for "wrong types", in place of a field the handler maps).
HOSTILE_METADATA = {
    "deep_at_the_limit": '{"x": ' + nested(1022) + "}",
    "deep_past_the_limit": '{"x": ' + nested(1025) + "}",
    "deep_1500": '{"x": ' + nested(1500) + "}",
    "deep_onboarding": '{"onboarding": {"profile": ' + nested(1030) + "}}",
    # The web cannot store U+0000 in JSONB; the form it stores stands in for it.
    "nul_replaced": '{"onboarding": {"profile": {"firstName": "a\\\\u0000b"}}, "n": "\\\\u0000"}',
    "huge_number": '{"x": 1e400, "onboarding": {"profile": {"age": 1e400}}}',
    "one_mebibyte": '{"x": "' + "a" * (1024 * 1024) + '"}',
    "array_metadata": nested(3),
    "onboarding_of_wrong_type": '{"onboarding": "27"}',
}
WRONG_TYPES = {"first_name": "12", "email_addresses": '"x"', "updated_at": '"yesterday"'}


def ordinary_events(clerk_id: str) -> list[dict[str, Any]]:
    user = user_data(clerk_id, email=f"{clerk_id}@e.com")
    return [
        user_event("user.created", user),
        session_event("session.created", f"sess_{clerk_id}", clerk_id, user=user),
    ]


def hostile_event(number: int, kind: str) -> tuple[dict[str, Any], str]:
    clerk_id = f"evil{number}"
    if kind in WRONG_TYPES:
        wrong: dict[str, Any] = {kind: PLACEHOLDER}
        data = user_data(clerk_id, email=f"{clerk_id}@e.com", **wrong)
        return user_event("user.updated", data), WRONG_TYPES[kind]
    data = user_data(clerk_id, email=f"{clerk_id}@e.com", unsafe_metadata=PLACEHOLDER)
    return user_event("user.created", data), HOSTILE_METADATA[kind]


def rows_of(engine: Engine, clerk_ids: set[str]) -> dict[str, Any]:
    """The users' and sessions' rows of these users, without the generated keys."""
    with engine.connect() as connection:
        users = connection.execute(
            select(
                User.clerk_id,
                User.email,
                User.email_verified,
                User.first_name,
                User.last_name,
                User.image_url,
                User.created_at,
                User.updated_at,
                User.last_sign_in_at,
            ).where(User.clerk_id.in_(clerk_ids))
        ).all()
        sessions = connection.execute(
            select(
                UserSession.clerk_id,
                UserSession.session_id,
                UserSession.is_active,
                UserSession.created_at,
                UserSession.last_active_at,
                UserSession.expires_at,
                UserSession.ended_at,
                UserSession.ip_address,
                UserSession.user_agent,
            ).where(UserSession.clerk_id.in_(clerk_ids))
        ).all()
    return {"users": sorted(users), "sessions": sorted(sessions)}


@st.composite
def mixed_batches(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Ordinary users' events, each user's in their order, with hostile ones in between."""
    users = draw(st.integers(1, 4))
    kinds = draw(st.lists(st.sampled_from([*HOSTILE_METADATA, *WRONG_TYPES]), max_size=4))
    items: list[tuple[str, Any]] = [("ordinary", f"u{n}") for n in range(users)]
    for number, kind in enumerate(kinds):
        items.insert(draw(st.integers(0, len(items))), ("hostile", (number, kind)))
    return items


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=mixed_batches())
def test_ordinary_events_end_as_they_would_alone_whatever_shares_their_batch(
    engine: Engine, items: list[tuple[str, Any]]
) -> None:
    ordinary = [value for kind, value in items if kind == "ordinary"]
    alone: dict[str, Any] = {}
    for clerk_id in ordinary:
        truncate_all(engine)
        own = [Processor()(store_raw(engine, p)) for p in ordinary_events(clerk_id)]
        alone[clerk_id] = (own, rows_of(engine, {clerk_id}))

    truncate_all(engine)
    stored: list[tuple[str, Any, int]] = []
    for kind, value in items:
        if kind == "ordinary":
            stored += [(kind, value, store_raw(engine, p)) for p in ordinary_events(value)]
        else:
            stored.append((kind, value, store_raw(engine, *hostile_event(*value))))
    statuses = Processor().batch([event_id for _, _, event_id in stored])

    for clerk_id in ordinary:
        own = [statuses[event_id] for kind, value, event_id in stored if value == clerk_id]
        assert (own, rows_of(engine, {clerk_id})) == alone[clerk_id]
    for _, (number, hostile_kind), event_id in (s for s in stored if s[0] == "hostile"):
        status, last_error = outcome(engine, event_id)
        if hostile_kind in HOSTILE_METADATA:  # never prevents the user's own rows
            assert status == "processed", last_error
            assert rows_of(engine, {f"evil{number}"})["users"]
        else:
            assert status == "failed"
            assert (last_error or "").startswith("payload does not match")


@pytest.mark.slow
def test_a_real_worker_applies_a_batch_holding_a_poison_payload(
    engine: Engine, web_publisher: Celery
) -> None:
    """Across processes: the web's one `process_events` message holds 50 other users' events
    and one 1500 levels deep; a real `cpn-sync worker` applies them all at once (no sweeper)."""
    innocent = [ordinary_user(engine, f"u{n}") for n in range(50)]
    hostile = hostile_user(engine, "evil", "user.updated", '{"x": ' + nested(1500) + "}")
    batch = [*innocent[:25], hostile, *innocent[25:]]

    with running(WorkerProcess(queues="webhooks")):
        send_as_web(web_publisher, batch, per_message=len(batch))
        wait_until(
            lambda: status_counts(engine) == {"processed": 51},
            60,
            "the whole batch processed",
            describe=lambda: str(status_counts(engine)),
        )
    assert len(stored_users(engine)) == 51
