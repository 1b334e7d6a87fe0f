"""Database or broker down: never a 2xx without a durable row; a stored row is never lost."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY
from sqlalchemy import Engine, text

from cpn_sync.local import RedisServer
from cpn_sync.settings import Settings
from tests.webhooks.conftest import (
    closed_port_url,
    deliver,
    enqueued_ids,
    new_event,
    post,
    running_app,
    stored,
    task_messages,
)
from webhooks.services import APPLICATION_NAME

pytestmark = pytest.mark.anyio


def enqueue_failures() -> float:
    return REGISTRY.get_sample_value("cpn_webhook_enqueue_failures_total") or 0.0


async def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_database_unreachable_is_503_and_nothing_is_enqueued(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    no_database = settings.model_copy(update={"database_url": closed_port_url("postgresql")})
    async with running_app(no_database) as client:
        response = await post(client, deliver(new_event()))
    assert response.status_code == 503
    assert response.json()["error"] == "inbox_unavailable"
    assert task_messages(broker) == []


async def test_connections_dropped_by_the_server_are_replaced_without_a_503(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    """After a database restart (here: every web connection terminated) the next event is
    stored at once: a writer retries a dead kept connection once with a fresh one."""
    async with running_app(settings) as client:
        # One at a time, so that each writer (and its kept connection) takes some.
        before = [await post(client, deliver(new_event())) for _ in range(4)]
        with clean_db.connect() as admin:
            terminated = admin.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": APPLICATION_NAME},
            ).scalar_one()
        after = [await post(client, deliver(new_event())) for _ in range(4)]
    assert terminated == 2  # both writers held a connection
    assert [answer.status_code for answer in before + after] == [200] * 8
    assert len(stored(clean_db)) == 8


async def test_broker_unreachable_still_200_and_row_stays_received(
    settings: Settings, clean_db: Engine
) -> None:
    no_broker = settings.model_copy(update={"redis_url": closed_port_url("redis")})
    failures_before = enqueue_failures()
    delivery = deliver(new_event())
    async with running_app(no_broker) as client:
        response = await post(client, delivery)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "id": delivery.svix_id}
    [row] = stored(clean_db)
    assert row.status == "received"
    assert enqueue_failures() == failures_before + 1


async def test_broker_stopped_then_restarted_publishing_resumes(
    settings: Settings, clean_db: Engine
) -> None:
    server = RedisServer(Path(tempfile.mkdtemp(prefix="cpn-ingest-broker-"))).start()
    try:
        with_server = settings.model_copy(update={"redis_url": server.url})
        queue_length = redis.Redis.from_url(server.url).llen
        async with running_app(with_server) as client:
            first = deliver(new_event())
            assert (await post(client, first)).json()["status"] == "accepted"
            await wait_until(lambda: queue_length("webhooks") == 1)
            server.stop()

            failures_before = enqueue_failures()
            during = deliver(new_event())
            assert (await post(client, during)).json()["status"] == "accepted"
            await wait_until(lambda: enqueue_failures() == failures_before + 1)

            server.start()
            after = deliver(new_event())
            assert (await post(client, after)).json()["status"] == "accepted"
        rows = {row.svix_id: row for row in stored(clean_db)}
        assert set(rows) == {first.svix_id, during.svix_id, after.svix_id}
        assert all(row.status == "received" for row in rows.values())
        published = set(enqueued_ids(redis.Redis.from_url(server.url)))
        # The event stored while the broker was down is left to the sweeper.
        assert published == {rows[first.svix_id].id, rows[after.svix_id].id}
    finally:
        server.stop()
