"""Any order, any duplicates: the database ends as after in-order delivery.

Clerk delivers at least once and in no guaranteed order. Hypothesis delivers a random
permutation, with random duplicates (a redelivered message for the same row, or a second row
with the same content), of one user's created, updated twice, session created and ended events
and, in half the cases, the user's deletion; waiting events released by a later event are
processed at random points. The messages are one per event (`process_event`, as the sweeper
sends them), the same with the waiting backlog applied in the first message's transaction, or
batches as the web sends them (`process_events`, cut at random points). The final users,
sessions, tombstones and payload redactions must equal those of in-order delivery, and no
event may be left open.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select

from db.models import DeletedUser, User, UserSession, WebhookEvent
from tests.workers.conftest import HYPOTHESIS_PROFILE, Processor
from tests.workers.factories import deleted_event, inbox_row, session_event, user_data, user_event
from workers.inbox.state import OPEN_STATUSES

CLERK_ID = "user_ordering"
SESSION_ID = "sess_ordering"
T0 = 1_716_883_200_000
MINUTE = 60_000
IN_ORDER = ("created", "updated_1", "updated_2", "session_created", "session_ended", "deleted")

ACTIVITY = {
    "object": "session_activity",
    "device_type": "desktop",
    "is_mobile": False,
    "browser_name": "Firefox",
    "browser_version": "131.0",
    "ip_address": "203.0.113.7",
    "city": "Lisbon",
    "country": "PT",
}


def _user(version: int, snapshot_has_email: bool = True) -> dict[str, Any]:
    """The user as Clerk describes it at version 0, 1 or 2."""
    data = user_data(
        CLERK_ID,
        email=(f"v{version}@example.com" if version == 2 else "first@example.com"),
        updated_at=T0 + version * MINUTE,
        first_name="Ana",
        last_name=f"Version {version}",
        image_url=f"https://img.example.com/{version}",
        last_sign_in_at=T0 + version * MINUTE,
        created_at=T0,
    )
    if not snapshot_has_email:
        data["email_addresses"] = []
    return data


def payloads(snapshot_has_email: bool) -> dict[str, dict[str, Any]]:
    session_times = {"created_at": T0, "expire_at": T0 + 7 * 24 * 60 * MINUTE}
    return {
        "created": user_event("user.created", _user(0)),
        "updated_1": user_event("user.updated", _user(1)),
        "updated_2": user_event("user.updated", _user(2)),
        "session_created": session_event(
            "session.created",
            SESSION_ID,
            CLERK_ID,
            user=_user(0, snapshot_has_email),
            latest_activity=ACTIVITY,
            last_active_at=T0 + MINUTE,
            updated_at=T0 + MINUTE,
            **session_times,
        ),
        "session_ended": session_event(
            "session.ended",
            SESSION_ID,
            CLERK_ID,
            user=_user(1, snapshot_has_email),
            last_active_at=T0 + 30 * MINUTE,
            updated_at=T0 + 31 * MINUTE,
            **session_times,
        ),
        "deleted": deleted_event(CLERK_ID),
    }


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        for model in (WebhookEvent, User, DeletedUser):
            connection.execute(delete(model))


def final_state(engine: Engine, svix_names: dict[str, str]) -> dict[str, Any]:
    with engine.connect() as connection:
        user_row = connection.execute(select(User).where(User.clerk_id == CLERK_ID)).one_or_none()
        session_row = connection.execute(select(UserSession)).one_or_none()
        tombstone = connection.scalar(select(DeletedUser.clerk_id))
        events = connection.execute(
            select(
                WebhookEvent.svix_id,
                WebhookEvent.status,
                WebhookEvent.payload.is_(None).label("erased"),
            )
        ).all()
    user_state = None if user_row is None else {**user_row._asdict(), "id": "<id>"}
    session_state = None
    if session_row is not None:
        session_state = {**session_row._asdict(), "id": "<id>"}
        session_state["user_id"] = user_row is not None and session_row.user_id == user_row.id
    return {
        "user": user_state,
        "session": session_state,
        "tombstone": tombstone,
        "redacted": sorted({(svix_names[e.svix_id], e.erased) for e in events}),
        "open_events": [e.svix_id for e in events if e.status in OPEN_STATUSES],
    }


def deliver(
    engine: Engine,
    steps: list[tuple[str, bool, bool]],
    snapshot_has_email: bool,
    mode: str = "single",
) -> dict[str, Any]:
    """Process each step (name, as a new row?, run released events now?). `mode` "single": a
    message per step; "backlog": the same, each applying up to 50 waiting events in its
    transaction; "batches": the steps up to each "now" in one `process_events` message.

    The rows are stored first, in one transaction (the web may store an event long before a
    worker takes it; a deletion then redacts rows still waiting to be processed).
    """
    reset(engine)
    events = payloads(snapshot_has_email)
    rows: list[dict[str, Any]] = []
    row_of_step: list[int] = []
    latest: dict[str, int] = {}
    for number, (name, new_row, _drain) in enumerate(steps):
        if name not in latest or new_row:
            latest[name] = len(rows)
            rows.append(inbox_row(events[name], svix_id=f"msg_{number}_{name}"))
        row_of_step.append(latest[name])
    with engine.begin() as connection:
        ids = connection.scalars(
            insert(WebhookEvent).returning(WebhookEvent.id, sort_by_parameter_order=True), rows
        ).all()
    process = Processor(batch_size=50 if mode == "backlog" else 1)
    batch: list[int] = []
    for (_name, _new_row, drain_now), row in zip(steps, row_of_step, strict=True):
        if mode != "batches":
            process(ids[row])
        elif ids[row] not in batch:
            batch.append(ids[row])
        if drain_now:
            if batch:
                process.batch(batch)
                batch = []
            process.drain()
    if batch:
        process.batch(batch)
    process.drain()
    svix_names = {row["svix_id"]: row["svix_id"].split("_", 2)[2] for row in rows}
    return final_state(engine, svix_names)


_expected: dict[tuple[bool, bool], dict[str, Any]] = {}


def in_order_state(engine: Engine, with_delete: bool, snapshot_has_email: bool) -> dict[str, Any]:
    key = (with_delete, snapshot_has_email)
    if key not in _expected:
        names = IN_ORDER if with_delete else IN_ORDER[:-1]
        _expected[key] = deliver(engine, [(n, False, True) for n in names], snapshot_has_email)
    return _expected[key]


Case = tuple[bool, bool, str, list[tuple[str, bool, bool]]]


@st.composite
def deliveries(draw: st.DrawFn) -> Case:
    with_delete = draw(st.booleans())
    snapshot_has_email = draw(st.booleans())
    mode = draw(st.sampled_from(["single", "backlog", "batches"]))
    names = list(IN_ORDER if with_delete else IN_ORDER[:-1])
    duplicates = draw(st.lists(st.sampled_from(names), max_size=4))
    order = draw(st.permutations(names + duplicates))
    steps = [(name, draw(st.booleans()), draw(st.booleans())) for name in order]
    return with_delete, snapshot_has_email, mode, steps


@pytest.mark.usefixtures("no_flush_wait")
@settings(HYPOTHESIS_PROFILE)
@given(case=deliveries())
def test_any_order_with_duplicates_ends_as_in_order_delivery(engine: Engine, case: Case) -> None:
    with_delete, snapshot_has_email, mode, steps = case
    expected = in_order_state(engine, with_delete, snapshot_has_email)

    actual = deliver(engine, steps, snapshot_has_email, mode)

    assert actual == expected
    assert actual["open_events"] == []


def test_in_order_reference_is_what_the_events_say(engine: Engine) -> None:
    """The reference itself: the newest user version, an ended session with its sign-in
    details; after deletion nothing but the tombstone and redacted rows."""
    kept = in_order_state(engine, with_delete=False, snapshot_has_email=True)
    assert kept["user"]["email"] == "v2@example.com"
    assert kept["user"]["last_name"] == "Version 2"
    assert kept["session"]["is_active"] is False
    assert kept["session"]["location_city"] == "Lisbon"
    assert kept["session"]["user_id"] is True
    assert kept["tombstone"] is None
    assert all(not redacted for _name, redacted in kept["redacted"])

    deleted = in_order_state(engine, with_delete=True, snapshot_has_email=True)
    assert (deleted["user"], deleted["session"], deleted["tombstone"]) == (None, None, CLERK_ID)
    assert all(redacted for _name, redacted in deleted["redacted"])
