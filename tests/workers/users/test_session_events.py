"""session.* events, built from Clerk's published examples."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from db.models import User, UserSession
from tests.workers.conftest import Processor
from tests.workers.factories import (
    at_ms,
    event_row,
    example,
    store_event,
    user_data,
    user_event,
)

CLERK_ID = "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"
SESSION_ID = "sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def stored_session(engine: Engine, session_id: str = SESSION_ID) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            select(UserSession).where(UserSession.session_id == session_id)
        ).one_or_none()


def user_id(engine: Engine, clerk_id: str = CLERK_ID) -> int | None:
    with engine.connect() as connection:
        return connection.scalar(select(User.id).where(User.clerk_id == clerk_id))


@pytest.fixture
def known_user(engine: Engine, process: Processor) -> int:
    payload = user_event("user.created", user_data(CLERK_ID, email="john@example.com"))
    assert process(store_event(engine, payload)) == "processed"
    stored = user_id(engine)
    assert stored is not None
    return stored


def ended_example(event_type: str) -> dict[str, Any]:
    payload = example(event_type)
    # A real end comes after some activity: later than the sign-in.
    payload["data"]["last_active_at"] = 1716886800000
    payload["data"]["updated_at"] = 1716887000000
    return payload


class TestSessionCreated:
    def test_every_field_from_latest_activity(
        self, engine: Engine, process: Processor, known_user: int
    ) -> None:
        event_id = store_event(engine, example("session.created"))

        assert process(event_id) == "processed"

        row = stored_session(engine)
        assert row.user_id == known_user
        assert row.clerk_id == CLERK_ID
        assert row.session_id == SESSION_ID
        assert str(row.ip_address) == "192.168.1.100"
        assert row.user_agent == CHROME_MAC
        assert row.device_type == "desktop"
        assert row.browser == "Chrome"
        assert row.location_country == "US"
        assert row.location_city == "San Francisco"
        assert row.created_at == at_ms(1716883200000)
        assert row.last_active_at == at_ms(1716883200000)
        assert row.expires_at == at_ms(1716969600000)
        assert row.ended_at is None
        assert row.is_active is True
        assert event_row(engine, event_id).status == "processed"

    def test_without_latest_activity_the_request_is_parsed(
        self, engine: Engine, process: Processor, known_user: int
    ) -> None:
        payload = example("session.pending")
        payload["event_attributes"]["http_request"] = {
            "client_ip": "10.1.2.3",
            "user_agent": IPHONE,
        }

        assert process(store_event(engine, payload)) == "processed"

        row = stored_session(engine)
        assert str(row.ip_address) == "10.1.2.3"
        assert row.user_agent == IPHONE
        assert row.device_type == "mobile"
        assert row.browser == "Mobile Safari"
        assert (row.location_country, row.location_city) == (None, None)
        assert row.is_active is False  # status "pending"
        assert row.expires_at == at_ms(1716969600000)

    def test_pending_then_created_becomes_active_with_activity_details(
        self, engine: Engine, process: Processor, known_user: int
    ) -> None:
        pending = example("session.pending")
        pending["event_attributes"]["http_request"] = {
            "client_ip": "10.1.2.3",
            "user_agent": IPHONE,
        }
        process(store_event(engine, pending))
        process(store_event(engine, example("session.created")))

        row = stored_session(engine)
        assert row.is_active is True
        assert (row.device_type, row.browser, str(row.ip_address)) == (
            "desktop",
            "Chrome",
            "192.168.1.100",
        )
        assert row.user_agent == IPHONE  # the first known user agent is kept

    def test_unusable_ip_and_country_are_left_empty(
        self, engine: Engine, process: Processor, known_user: int
    ) -> None:
        payload = example("session.created")
        payload["data"]["latest_activity"].update(ip_address="not-an-ip", country="USA")

        assert process(store_event(engine, payload)) == "processed"

        row = stored_session(engine)
        assert (row.ip_address, row.location_country) == (None, None)


class TestSessionEnds:
    @pytest.mark.parametrize("event_type", ["session.ended", "session.removed", "session.revoked"])
    def test_end_marks_inactive_with_its_time(
        self, engine: Engine, process: Processor, known_user: int, event_type: str
    ) -> None:
        process(store_event(engine, example("session.created")))

        assert process(store_event(engine, ended_example(event_type))) == "processed"

        row = stored_session(engine)
        assert row.is_active is False
        assert row.ended_at == at_ms(1716887000000)
        assert row.last_active_at == at_ms(1716886800000)
        assert row.created_at == at_ms(1716883200000)
        assert row.device_type == "desktop"  # the end does not overwrite the sign-in details

    @pytest.mark.parametrize("status", ["expired", "abandoned"])
    def test_ending_status_on_any_event_ends_the_session(
        self, engine: Engine, process: Processor, known_user: int, status: str
    ) -> None:
        payload = example("session.created")
        payload["data"]["status"] = status

        process(store_event(engine, payload))

        row = stored_session(engine)
        assert row.is_active is False
        assert row.ended_at is not None

    def test_late_created_never_reactivates(
        self, engine: Engine, process: Processor, known_user: int
    ) -> None:
        process(store_event(engine, ended_example("session.ended")))
        process(store_event(engine, example("session.created")))

        row = stored_session(engine)
        assert row.is_active is False
        assert row.ended_at == at_ms(1716887000000)
        # ... while the sign-in details still arrive.
        assert (row.location_country, row.location_city) == ("US", "San Francisco")
        assert row.created_at == at_ms(1716883200000)
        assert row.last_active_at == at_ms(1716886800000)

    def test_times_out_of_order_are_clamped_to_satisfy_the_check(
        self, engine: Engine, process: Processor, known_user: int
    ) -> None:
        payload = example("session.ended")
        payload["data"].update(
            created_at=1716883200000,
            last_active_at=1716880000000,  # before created_at
            updated_at=1716870000000,  # ended before it was active
            expire_at=1716800000000,  # expired before it was created
        )

        assert process(store_event(engine, payload)) == "processed"

        row = stored_session(engine)
        assert row.created_at == at_ms(1716883200000)
        assert row.last_active_at == row.created_at
        assert row.ended_at == row.last_active_at
        assert row.expires_at == row.created_at
        # A later event with a later activity moves ended_at along with it.
        later = example("session.created")
        later["data"]["last_active_at"] = 1716890000000
        assert process(store_event(engine, later)) == "processed"
        row = stored_session(engine)
        assert row.last_active_at == at_ms(1716890000000)
        assert row.ended_at == row.last_active_at


class TestUnknownUser:
    def test_user_is_created_from_data_user_when_it_has_an_address(
        self, engine: Engine, process: Processor
    ) -> None:
        payload = example("session.created")
        payload["data"]["user"] = user_data(CLERK_ID, email="john@example.com")

        assert process(store_event(engine, payload)) == "processed"

        new_user = user_id(engine)
        assert new_user is not None
        assert stored_session(engine).user_id == new_user

    def test_waits_without_an_address_and_is_released_by_the_user(
        self, engine: Engine, process: Processor
    ) -> None:
        waiting = store_event(engine, example("session.created"))  # data.user: no address

        assert process(waiting) == "waiting"
        row = event_row(engine, waiting)
        assert row.status == "waiting"
        assert f"waiting for user {CLERK_ID}" in row.last_error
        assert row.processed_at is None
        assert stored_session(engine) is None

        created = store_event(
            engine, user_event("user.created", user_data(CLERK_ID, email="j@e.com"))
        )
        assert process(created) == "processed"
        assert process.released() == [waiting]

        process.drain()
        row = event_row(engine, waiting)
        assert (row.status, row.attempts, row.last_error) == ("processed", 2, None)
        assert stored_session(engine).user_id == user_id(engine)
