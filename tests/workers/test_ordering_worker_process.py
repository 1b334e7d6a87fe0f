"""Events that arrive out of order, applied by a real `cpn-sync worker` (issue #15, finding 5):
an email address still held by another stored user makes the event wait for that holder, and
the holder's change releases it through the broker; the onboarding migration runs on a later
`user.updated` when the `user.created` failed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import Engine, func, select

from db.models import DataMigration, User, UserInteraction
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running, send_as_web, wait_until
from tests.workers.factories import deleted_event, event_row, store_event, user_data, user_event
from tests.workers.onboarding.factories import onboarding

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProcess]:
    with running(WorkerProcess()) as process:
        yield process


def event(event_type: str, clerk_id: str, email: str | None, at: int, **fields: Any) -> Any:
    return user_event(event_type, user_data(clerk_id, email=email, updated_at=at, **fields))


def apply_through_worker(engine: Engine, web_publisher: Celery, payload: Any, status: str) -> int:
    event_id = store_event(engine, payload)
    send_as_web(web_publisher, [event_id])
    wait_until(
        lambda: event_row(engine, event_id).status == status,
        60,
        f"event {event_id} is {status}",
        describe=lambda: f"it is {event_row(engine, event_id).status}",
    )
    return event_id


def emails(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(select(User.clerk_id, User.email)).all()
    return {row.clerk_id: row.email for row in rows}


def test_a_new_account_with_the_address_of_a_deleted_one_is_applied(
    engine: Engine, worker: WorkerProcess, web_publisher: Celery
) -> None:
    """Deleted and signed up again with the same address; the new `user.created` arrives
    before the old `user.deleted`."""
    apply_through_worker(
        engine, web_publisher, event("user.created", "user_old", "ana@e.com", 1_000), "processed"
    )
    new_account = apply_through_worker(
        engine, web_publisher, event("user.created", "user_new", "ana@e.com", 5_000), "waiting"
    )

    apply_through_worker(engine, web_publisher, deleted_event("user_old"), "processed")

    wait_until(lambda: event_row(engine, new_account).status == "processed", 60, "released")
    assert emails(engine) == {"user_new": "ana@e.com"}


def test_two_users_exchanging_addresses_both_end_applied(
    engine: Engine, worker: WorkerProcess, web_publisher: Celery
) -> None:
    for clerk_id, email in (("user_a", "a@e.com"), ("user_b", "b@e.com")):
        apply_through_worker(
            engine, web_publisher, event("user.created", clerk_id, email, 1_000), "processed"
        )
    a_takes_b = apply_through_worker(
        engine, web_publisher, event("user.updated", "user_a", "b@e.com", 3_000), "waiting"
    )

    b_takes_a = apply_through_worker(
        engine, web_publisher, event("user.updated", "user_b", "a@e.com", 2_000), "processed"
    )

    wait_until(lambda: event_row(engine, a_takes_b).status == "processed", 60, "released")
    assert event_row(engine, b_takes_a).status == "processed"
    assert emails(engine) == {"user_a": "b@e.com", "user_b": "a@e.com"}


def test_a_user_updated_migrates_the_onboarding_a_failed_user_created_carried(
    engine: Engine, worker: WorkerProcess, web_publisher: Celery
) -> None:
    data = {"onboarding": onboarding()}
    apply_through_worker(
        engine,
        web_publisher,
        event("user.created", "user_o", None, 1_000, unsafe_metadata=data),
        "failed",
    )

    apply_through_worker(
        engine,
        web_publisher,
        event("user.updated", "user_o", "o@e.com", 2_000, unsafe_metadata=data),
        "processed",
    )

    with engine.connect() as connection:
        migrations = connection.scalars(select(DataMigration.status)).all()
        interactions = connection.scalar(select(func.count()).select_from(UserInteraction))
    assert migrations == ["completed"]
    assert interactions == 1
