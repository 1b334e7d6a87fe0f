"""Verified events whose content JSONB or orjson cannot hold (`cpn_sync.unstorable`): the web
stores them with the offending values replaced and named; the worker applies the event without
them when they are inside `unsafe_metadata` (only the onboarding migration fails), and otherwise
ends it `failed` naming each. Ordinary events of the same batch end as they would alone."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from celery import Celery
from sqlalchemy import Engine, select

from cpn_sync.unstorable import storable_text
from db.models import DataMigration, User
from tests.worker_process import WorkerProcess
from tests.workers.conftest import (
    Processor,
    running,
    send_as_web,
    status_counts,
    wait_until,
)
from tests.workers.factories import event_row, store_event, user_data, user_event
from webhooks.envelope import parse_envelope

ONBOARDING = {
    "sessionDataId": "ssd_hostile",
    "profile": {"firstName": "Ana", "age": "AGE", "ethnicity": "latina", "rating": 8.5},
}


def stored_by_the_web(engine: Engine, event: dict[str, Any], raw: dict[bytes, bytes]) -> int:
    """The event's body as Clerk sends it (`raw` swaps placeholders for bytes orjson cannot
    write), made storable by the web's own code (its parser, then its inbox's repair of a row
    PostgreSQL refused), then inserted."""
    body = orjson.dumps(event)
    for placeholder, value in raw.items():
        body = body.replace(placeholder, value)
    _envelope, storable = parse_envelope(body)  # what orjson refuses is replaced here,
    stored = storable or storable_text(body.decode())  # a \u0000 once PostgreSQL refuses it
    return store_event(engine, orjson.loads(stored or body))


def store_mixed(engine: Engine) -> tuple[list[int], int, int, int]:
    """Three ordinary users' events and three hostile ones, stored as the web stores them."""
    ordinary = [
        store_event(engine, user_event("user.created", user_data(f"user_ok{n}", email=f"{n}@x.io")))
        for n in range(3)
    ]
    nul_name = stored_by_the_web(
        engine,
        user_event("user.created", user_data("user_nul", email="nul@x.io", first_name="NUL")),
        {b'"NUL"': b'"An\\u0000a"'},
    )
    huge_age = stored_by_the_web(
        engine,
        user_event(
            "user.created",
            user_data("user_huge", email="huge@x.io", unsafe_metadata={"onboarding": ONBOARDING}),
        ),
        {b'"AGE"': b"1e400"},
    )
    nul_theme = stored_by_the_web(
        engine,
        user_event(
            "user.created",
            user_data("user_theme", email="theme@x.io", unsafe_metadata={"theme": "NUL"}),
        ),
        {b'"NUL"': b'"dark\\u0000"'},
    )
    return ordinary, nul_name, huge_age, nul_theme


def assert_each_ended_as_the_rules_say(
    engine: Engine, ordinary: list[int], nul_name: int, huge_age: int, nul_theme: int
) -> None:
    outcomes = {
        event_id: event_row(engine, event_id).status
        for event_id in [*ordinary, nul_name, huge_age, nul_theme]
    }

    assert [outcomes[event_id] for event_id in ordinary] == ["processed"] * 3
    assert outcomes[nul_name] == "failed"
    assert event_row(engine, nul_name).last_error == (
        "payload: data.first_name holds \\u0000, which PostgreSQL cannot store"
    )
    assert outcomes[huge_age] == "processed"
    assert outcomes[nul_theme] == "processed"
    with engine.connect() as connection:
        users = set(connection.scalars(select(User.clerk_id)))
        migrations = connection.execute(
            select(DataMigration.clerk_id, DataMigration.status, DataMigration.error_message)
        ).all()
    assert users == {"user_ok0", "user_ok1", "user_ok2", "user_huge", "user_theme"}
    assert [tuple(row) for row in migrations] == [
        ("user_huge", "failed", "profile.age: is a number outside the double range")
    ]


def test_hostile_values_fail_their_own_event_or_only_its_onboarding(
    engine: Engine, process: Processor
) -> None:
    ordinary, nul_name, huge_age, nul_theme = store_mixed(engine)

    process.batch([ordinary[0], nul_name, ordinary[1], huge_age, nul_theme, ordinary[2]])

    assert_each_ended_as_the_rules_say(engine, ordinary, nul_name, huge_age, nul_theme)


@pytest.mark.slow
def test_a_real_worker_applies_the_mixed_batch_the_same_way(
    engine: Engine, web_publisher: Celery
) -> None:
    ordinary, nul_name, huge_age, nul_theme = store_mixed(engine)
    ids = [ordinary[0], nul_name, ordinary[1], huge_age, nul_theme, ordinary[2]]

    with running(WorkerProcess(concurrency=1, queues="webhooks")):
        send_as_web(web_publisher, ids, per_message=len(ids))
        wait_until(
            lambda: (
                status_counts(engine).get("received", 0) == 0
                and status_counts(engine).get("processing", 0) == 0
            ),
            60,
            "every event ends",
            describe=lambda: str(status_counts(engine)),
        )

    assert_each_ended_as_the_rules_say(engine, ordinary, nul_name, huge_age, nul_theme)
