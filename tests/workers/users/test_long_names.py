"""Valid Clerk payloads whose names are longer than the seed's columns (DESIGN.md section 3):
Clerk puts no limit on names, `users.first_name` / `last_name` are varchar(100). The name is
stored cut to 100 characters, and a session event validates only what it uses."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from db.models import User, UserSession
from tests.workers.conftest import Processor
from tests.workers.factories import event_row, session_event, store_event, user_data, user_event

CLERK_ID = "user_long_names"
# 150 characters, some outside the BMP: cut on a character boundary, never inside one.
LONG = "Ana-" + "é" * 50 + "😀" * 96


def stored_user(engine: Engine) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(User).where(User.clerk_id == CLERK_ID)).one_or_none()


@pytest.mark.parametrize("event_type", ["user.created", "user.updated"])
def test_a_user_with_a_long_name_is_stored_with_the_name_cut(
    engine: Engine, process: Processor, event_type: str
) -> None:
    data = user_data(CLERK_ID, email="long@e.com", first_name=LONG, last_name=LONG[::-1])

    assert process(store_event(engine, user_event(event_type, data))) == "processed"

    user = stored_user(engine)
    assert user.first_name == LONG[:100]
    assert user.last_name == LONG[::-1][:100]


@pytest.mark.parametrize(
    "event_type",
    ["session.created", "session.pending", "session.ended", "session.removed", "session.revoked"],
)
def test_a_session_event_of_a_stored_user_is_written_whatever_its_user_snapshot_says(
    engine: Engine, process: Processor, event_type: str
) -> None:
    created = user_event("user.created", user_data(CLERK_ID, email="long@e.com"))
    assert process(store_event(engine, created)) == "processed"
    # The snapshot holds values the user columns could not take as they are.
    snapshot = user_data(CLERK_ID, email="long@e.com", first_name=LONG, last_name=LONG)
    snapshot["email_addresses"][0]["email_address"] = "x" * 300
    payload = session_event(event_type, "sess_long", CLERK_ID, user=snapshot)

    event_id = store_event(engine, payload)

    assert process(event_id) == "processed", event_row(engine, event_id).last_error
    with engine.connect() as connection:
        session = connection.execute(
            select(UserSession).where(UserSession.session_id == "sess_long")
        ).one()
    ends = event_type not in ("session.created", "session.pending")
    assert session.is_active is (payload["data"]["status"] == "active" and not ends)
    assert (session.ended_at is not None) is ends


def test_a_session_event_creates_its_user_from_a_snapshot_with_a_long_name(
    engine: Engine, process: Processor
) -> None:
    snapshot = user_data(CLERK_ID, email="long@e.com", first_name=LONG)
    payload = session_event("session.created", "sess_long", CLERK_ID, user=snapshot)

    assert process(store_event(engine, payload)) == "processed"

    assert stored_user(engine).first_name == LONG[:100]
