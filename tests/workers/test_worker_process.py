"""A real `cpn-sync worker`, started as the Procfile starts it, applying what the web sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from click.testing import CliRunner
from sqlalchemy import Engine, select, update

from cpn_sync.cli import main
from db.models import User, UserSession, WebhookEvent
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running, send_as_web, wait_until
from tests.workers.factories import (
    email_address,
    event_row,
    example,
    store_event,
    user_data,
    user_event,
)

pytestmark = pytest.mark.slow

CLERK_ID = "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S"


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProcess]:
    with running(WorkerProcess()) as process:
        yield process


def final(engine: Engine, event_id: int) -> bool:
    return event_row(engine, event_id).status in ("processed", "ignored", "failed")


def test_a_session_waits_for_its_user_through_the_broker(
    engine: Engine, worker: WorkerProcess, web_publisher: Celery
) -> None:
    session_id = store_event(engine, example("session.created"))  # data.user has no address
    send_as_web(web_publisher, [session_id])
    wait_until(lambda: event_row(engine, session_id).status == "waiting", 60, "session waits")

    user = user_event("user.created", user_data(CLERK_ID, email="john@example.com"))
    user_id = store_event(engine, user)
    send_as_web(web_publisher, [user_id])

    # The user's commit releases the waiting session: a follow-up task on the broker.
    wait_until(lambda: event_row(engine, session_id).status == "processed", 60, "released")
    with engine.connect() as connection:
        stored_user = connection.scalar(select(User.id).where(User.clerk_id == CLERK_ID))
        session_user = connection.scalar(select(UserSession.user_id))
    assert stored_user is not None
    assert session_user == stored_user
    assert event_row(engine, session_id).attempts == 2


def test_no_email_fails_with_the_reason_then_a_replay_of_the_fixed_row_is_processed(
    engine: Engine, worker: WorkerProcess, web_publisher: Celery
) -> None:
    event_id = store_event(engine, example("user.created"), svix_id="msg_no_email")
    send_as_web(web_publisher, [event_id])
    wait_until(lambda: final(engine, event_id), 60, "the event ends")
    row = event_row(engine, event_id)
    assert row.status == "failed"
    assert row.last_error.startswith("user has no email address")

    fixed = example("user.created")
    fixed["data"]["email_addresses"] = [
        email_address(fixed["data"]["primary_email_address_id"], "john@example.com")
    ]
    with engine.begin() as connection:
        connection.execute(
            update(WebhookEvent).where(WebhookEvent.id == event_id).values(payload=fixed)
        )
    result = CliRunner().invoke(main, ["events", "replay", "msg_no_email"])
    assert result.exit_code == 0, result.output

    wait_until(lambda: final(engine, event_id), 60, "the replayed event ends")
    row = event_row(engine, event_id)
    assert (row.status, row.last_error, row.attempts) == ("processed", None, 1)
    with engine.connect() as connection:
        assert connection.scalar(select(User.email)) == "john@example.com"


def test_the_worker_log_holds_ids_but_no_personal_data(
    engine: Engine, worker: WorkerProcess, web_publisher: Celery
) -> None:
    payload = user_event(
        "user.created",
        user_data("user_log", email="secret.person@example.com", first_name="Zebediah"),
    )
    event_id = store_event(engine, payload)
    send_as_web(web_publisher, [event_id])
    wait_until(lambda: final(engine, event_id), 60, "the event ends")
    wait_until(
        lambda: any(line.get("event_id") == event_id for line in worker.json_lines()),
        10,
        "the outcome is logged",
    )

    log = worker.log
    assert event_id in [line.get("event_id") for line in worker.events("event.applied")]
    for personal in ("secret.person@example.com", "Zebediah", "192.168.1.100", "Doe"):
        assert personal not in log
