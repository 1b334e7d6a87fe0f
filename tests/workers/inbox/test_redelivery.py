"""A batch whose worker died comes back (Redis restores it with `redelivered` set): any of its
events may have killed that worker, so each goes on alone as a suspect delivery."""

from __future__ import annotations

import json

import pytest
import redis
from celery import Celery
from sqlalchemy import Engine

from tests.worker_process import WorkerProcess
from tests.workers.conftest import running, send_as_web, status_counts, wait_until
from tests.workers.factories import event_row, store_event, user_data, user_event

pytestmark = pytest.mark.slow


def mark_redelivered(redis_url: str, queue: str) -> int:
    """What kombu's Redis transport does to a message it restores after its consumer died."""
    client = redis.Redis.from_url(redis_url)
    messages = client.lrange(queue, 0, -1)
    for index, raw in enumerate(messages):
        message = json.loads(raw)
        message["headers"]["redelivered"] = True
        message["properties"]["delivery_info"]["redelivered"] = True
        client.lset(queue, index, json.dumps(message))
    return len(messages)


def test_a_redelivered_batch_is_applied_event_by_event_each_attempt_counted(
    engine: Engine, redis_url: str, web_publisher: Celery
) -> None:
    event_ids = [
        store_event(
            engine, user_event("user.created", user_data(f"user_r{n}", email=f"r{n}@e.com"))
        )
        for n in range(4)
    ]
    send_as_web(web_publisher, event_ids)
    assert mark_redelivered(redis_url, "webhooks") == 1

    with running(WorkerProcess(concurrency=1)) as worker:
        wait_until(lambda: status_counts(engine) == {"processed": 4}, 60, "all applied")
        wait_until(lambda: len(worker.events("event.applied")) == 4, 10, "four outcomes logged")
        redelivered = worker.events("event.batch_redelivered")
        applied = worker.events("event.applied")

    assert len(redelivered) == 1
    assert sorted(line["event_id"] for line in applied) == event_ids
    assert not any(line.get("batched") for line in applied)  # one transaction each
    for event_id in event_ids:
        assert event_row(engine, event_id).attempts == 1
