"""A batch's plain events share their statements (`workers.inbox.plain_events`): the rows and
outcomes are those of the same events applied one by one, whatever the batch mixes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select, text

from db.models import User, UserSession, WebhookEvent
from tests.workers.conftest import Processor
from tests.workers.factories import (
    deleted_event,
    event_row,
    example,
    session_event,
    store_event,
    user_data,
    user_event,
)

T0 = 1_716_883_200_000
ACTIVITY_FREE: dict[str, Any] = {"latest_activity": None}
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5"


def user(clerk_id: str, version: int, email: str | None = None, **fields: Any) -> dict[str, Any]:
    address = email or f"{clerk_id}@e.com"
    data = user_data(clerk_id, email=address, updated_at=T0 + version, **fields)
    return user_event("user.created" if version == 0 else "user.updated", data)


def mixed_events() -> list[dict[str, Any]]:
    """Users created, updated, updated late with an older version; sessions created, ended in
    the same batch, created late after their end, with and without Clerk's activity record;
    a session whose user arrives only as its snapshot, and one whose user never arrives."""
    events: list[dict[str, Any]] = []
    for n in range(12):
        clerk_id = f"user_p{n}"
        events.append(user(clerk_id, 0, first_name=f"First{n}"))
        if n % 2 == 0:
            events.append(user(clerk_id, 2_000, first_name=f"Newer{n}"))
        if n % 3 == 0:
            events.append(user(clerk_id, 1_000, first_name=f"Older{n}"))
        activity = {} if n % 2 else ACTIVITY_FREE
        session = f"sess_p{n}"
        created = {"created_at": T0, "last_active_at": T0 + n, **activity}
        events.append(session_event("session.created", session, clerk_id, **created))
        if n % 4 == 1:  # Clerk's activity record, then a request from another device
            request = session_event("session.pending", session, clerk_id, **ACTIVITY_FREE)
            request["event_attributes"]["http_request"] = {
                "client_ip": "10.1.2.3",
                "user_agent": PHONE,
            }
            events.append(request)
        if n % 4 == 2:  # a request, then Clerk's activity record
            recorded = example("session.created")["data"]["latest_activity"]
            events.append(
                session_event("session.pending", session, clerk_id, latest_activity=recorded)
            )
        if n % 4 == 0:
            ended: dict[str, Any] = {"status": "ended", "updated_at": T0 + 5_000}
            ended["last_active_at"] = T0 + 4_000
            events.append(session_event("session.ended", session, clerk_id, **ended))
            late = {"created_at": T0, "last_active_at": T0 + 3_000, **ACTIVITY_FREE}
            events.append(session_event("session.created", session, clerk_id, **late))
    snapshot = user_data("user_snap", email="snap@e.com")
    events.append(session_event("session.created", "sess_snap", "user_snap", user=snapshot))
    orphan = session_event("session.created", "sess_orphan", "user_never")
    del orphan["data"]["user"]
    events.append(orphan)
    return events


def stored_rows(engine: Engine) -> tuple[Sequence[Any], Sequence[Any], dict[str, str]]:
    with engine.connect() as connection:
        users = connection.execute(
            select(*(column for column in User.__table__.c if column.name != "id")).order_by(
                User.clerk_id
            )
        ).all()
        sessions = connection.execute(
            select(
                *(c for c in UserSession.__table__.c if c.name not in ("id", "user_id")),
                User.clerk_id.label("owner"),
            )
            .join(User, User.id == UserSession.user_id)
            .order_by(UserSession.session_id)
        ).all()
        found = connection.execute(select(WebhookEvent.svix_id, WebhookEvent.status))
        statuses = {svix_id: status for svix_id, status in found}
    return users, sessions, statuses


def start_over(engine: Engine) -> None:
    """The same stored events, not applied yet, and no rows written."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM user_sessions; DELETE FROM users"))
        connection.execute(
            text(
                "UPDATE webhook_events SET status = 'received', processed_at = NULL, attempts = 0,"
                " last_error = NULL, waiting_for = NULL"
            )
        )


class TestPlainEvents:
    def test_a_mixed_batch_writes_what_its_events_write_one_by_one(
        self, engine: Engine, process: Processor
    ) -> None:
        ids = [store_event(engine, payload) for payload in mixed_events()]
        for event_id in ids:
            process(event_id)
        process.drain()
        one_by_one = stored_rows(engine)
        start_over(engine)

        together = Processor()
        together.batch(ids)
        together.drain()

        assert stored_rows(engine) == one_by_one
        users, sessions, statuses = one_by_one
        assert len(users) == 13
        assert len(sessions) == 13
        assert sorted(statuses.values()).count("waiting") == 1  # the orphan session's
        by_id = {row.session_id: row for row in sessions}
        assert not by_id["sess_p4"].is_active
        assert by_id["sess_p4"].ended_at is not None
        assert by_id["sess_p1"].location_city == "San Francisco"  # the record, kept
        assert by_id["sess_p1"].browser == "Chrome"
        assert by_id["sess_p2"].location_city == "San Francisco"  # the record, taken

    def test_a_user_with_an_event_that_needs_a_decision_has_all_its_events_applied_in_order(
        self, engine: Engine, process: Processor
    ) -> None:
        created = store_event(engine, user("user_d", 0))
        deleted = store_event(engine, deleted_event("user_d"))
        late = store_event(engine, user("user_d", 5_000))
        session = store_event(engine, session_event("session.created", "sess_d", "user_d"))
        other = store_event(engine, user("user_e", 0))

        statuses = process.batch([created, deleted, late, session, other])

        assert statuses == {
            created: "processed",
            deleted: "processed",
            late: "ignored",
            session: "ignored",
            other: "processed",
        }
        with engine.connect() as connection:
            assert connection.scalars(select(User.clerk_id)).all() == ["user_e"]
        assert event_row(engine, late).erased
        assert event_row(engine, created).erased

    def test_an_address_another_user_holds_sends_that_user_one_by_one_to_wait(
        self, engine: Engine, process: Processor
    ) -> None:
        process(store_event(engine, user("user_h", 0, email="shared@e.com")))
        taker = store_event(engine, user("user_t", 0, email="shared@e.com"))
        its_session = store_event(engine, session_event("session.created", "sess_t", "user_t"))
        plain = store_event(engine, user("user_q", 0))

        statuses = process.batch([taker, its_session, plain])

        assert statuses[plain] == "processed"
        assert statuses[taker] == "waiting"
        assert event_row(engine, taker).waiting_for == "user_h"
        # Its user's events stay in their order: the session finds no user, and its snapshot
        # (no address) cannot create one.
        assert statuses[its_session] == "waiting"

    def test_a_statement_the_database_refuses_fails_only_its_own_event(
        self, engine: Engine, process: Processor
    ) -> None:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.session_id = 'sess_boom' THEN RAISE EXCEPTION 'refused'; END IF; "
                    "RETURN NEW; END $$; CREATE TRIGGER refuse_boom BEFORE INSERT ON "
                    "user_sessions FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
                )
            )
        try:
            first = store_event(engine, user("user_b", 0))
            boom = store_event(engine, session_event("session.created", "sess_boom", "user_b"))
            fine = store_event(engine, session_event("session.created", "sess_fine", "user_b"))

            statuses = process.batch([first, boom, fine])
        finally:
            with engine.begin() as connection:
                connection.execute(text("DROP TRIGGER refuse_boom ON user_sessions"))
                connection.execute(text("DROP FUNCTION refuse_boom()"))

        assert statuses == {first: "processed", boom: "failed", fine: "processed"}
        assert "unexpected error" in event_row(engine, boom).last_error
        with engine.connect() as connection:
            assert connection.scalars(select(UserSession.session_id)).all() == ["sess_fine"]
