"""Every payload Clerk's published schema allows, for every handled type, maps as DESIGN.md
section 3 says: the user row or the session row holds the fields it names, cut to the seed's
columns where Clerk's values are longer; what cannot be applied waits or fails with its reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from db.models import DeletedUser, User, UserSession
from tests.workers.clerk_schema import HANDLED_TYPES, clerk_events
from tests.workers.conftest import Processor, truncate_all
from tests.workers.factories import at_ms, event_row, store_event, user_data, user_event

END_TYPES = ("session.ended", "session.removed", "session.revoked")
END_STATUSES = ("ended", "removed", "revoked", "expired", "abandoned", "replaced")
NO_EMAIL = "user has no email address"
EXAMPLES = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def primary_address(user: dict[str, Any]) -> dict[str, Any] | None:
    addresses = user.get("email_addresses") or []
    for address in addresses:
        if address.get("id") is not None and address["id"] == user.get("primary_email_address_id"):
            return dict(address)
    return dict(addresses[0]) if addresses else None


def cut(value: str | None) -> str | None:
    return None if value is None else value[:100]


def ms(value: int | None) -> dt.datetime | None:
    return None if value is None else at_ms(value)


def assert_user_row(engine: Engine, data: dict[str, Any]) -> None:
    address = primary_address(data)
    assert address is not None
    with engine.connect() as connection:
        user = connection.execute(select(User).where(User.clerk_id == data["id"])).one()
    verification = address.get("verification") or {}
    assert user.email == address["email_address"]
    assert user.email_verified is (verification.get("status") == "verified")
    assert user.first_name == cut(data.get("first_name"))
    assert user.last_name == cut(data.get("last_name"))
    assert user.image_url == (data.get("image_url") or data.get("profile_image_url"))
    assert user.last_sign_in_at == ms(data.get("last_sign_in_at"))
    if data.get("updated_at") is not None:
        assert user.updated_at == ms(data["updated_at"])
    if data.get("created_at") is not None:
        assert user.created_at == ms(data["created_at"])


def apply_user_event(engine: Engine, payload: dict[str, Any]) -> None:
    data = payload["data"]
    event_id = store_event(engine, payload)
    status = Processor()(event_id)
    last_error = event_row(engine, event_id).last_error
    if primary_address(data) is None:
        assert (status, last_error[: len(NO_EMAIL)]) == ("failed", NO_EMAIL)
        return
    assert status == "processed", last_error
    assert_user_row(engine, data)


def apply_deleted_event(engine: Engine, payload: dict[str, Any]) -> None:
    event_id = store_event(engine, payload)
    status = Processor()(event_id)
    clerk_id = payload["data"].get("id")
    if clerk_id is None:  # nothing says whom to delete
        assert status == "failed"
        return
    assert status == "processed", event_row(engine, event_id).last_error
    with engine.connect() as connection:
        assert connection.scalar(select(DeletedUser.clerk_id)) == clerk_id


def apply_session_event(engine: Engine, payload: dict[str, Any], user_known: bool) -> None:
    data = payload["data"]
    if user_known:
        created = user_event("user.created", user_data(data["user_id"], email="known@e.com"))
        assert Processor()(store_event(engine, created)) == "processed"
    event_id = store_event(engine, payload)
    status = Processor()(event_id)
    snapshot = data.get("user")
    creatable = (
        isinstance(snapshot, dict)
        and snapshot.get("id") == data["user_id"]
        and primary_address(snapshot) is not None
    )
    if not user_known and not creatable:
        assert status == "waiting", event_row(engine, event_id).last_error
        return
    assert status == "processed", event_row(engine, event_id).last_error
    if not user_known:
        assert_user_row(engine, snapshot)
    with engine.connect() as connection:
        session = connection.execute(
            select(UserSession).where(UserSession.session_id == data["id"])
        ).one()
    ended = payload["type"] in END_TYPES or data["status"] in END_STATUSES
    assert session.clerk_id == data["user_id"]
    assert session.is_active is (data["status"] == "active" and not ended)
    assert (session.ended_at is not None) is ended
    assert session.created_at == at_ms(data["created_at"])
    assert session.last_active_at == max(at_ms(data["last_active_at"]), session.created_at)
    assert session.expires_at == max(at_ms(data["expire_at"]), session.created_at)


@pytest.mark.parametrize("event_type", HANDLED_TYPES)
def test_every_payload_of_clerks_schema_maps_as_the_design_says(
    engine: Engine, event_type: str
) -> None:
    @EXAMPLES
    @given(payload=clerk_events(event_type), user_known=st.booleans())
    def check(payload: dict[str, Any], user_known: bool) -> None:
        truncate_all(engine)
        if event_type == "user.deleted":
            apply_deleted_event(engine, payload)
        elif event_type.startswith("user."):
            apply_user_event(engine, payload)
        else:
            apply_session_event(engine, payload, user_known)

    check()
