"""Concurrent copies of one delivery: one row, one task message."""

from __future__ import annotations

import asyncio

import pytest
import redis
from sqlalchemy import Engine

from cpn_sync.settings import Settings
from tests.webhooks.conftest import (
    deliver,
    enqueued_ids,
    new_event,
    post,
    running_app,
    stored,
    task_messages,
)

pytestmark = pytest.mark.anyio


async def test_twenty_concurrent_copies_make_one_row_and_one_task(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    delivery = deliver(new_event())
    async with running_app(settings) as client:
        answers = await asyncio.gather(*(post(client, delivery) for _ in range(20)))
    statuses = sorted(answer.json()["status"] for answer in answers)
    assert statuses == ["accepted"] + ["duplicate"] * 19
    [row] = stored(clean_db)
    assert task_messages(broker) == [{"task": "webhooks.process_events", "args": [[row.id]]}]


async def test_copies_across_two_app_instances_make_one_row_and_one_task(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    """Two processes' inboxes race on the unique svix id; the database decides."""
    delivery = deliver(new_event())
    async with running_app(settings) as first, running_app(settings) as second:
        answers = await asyncio.gather(
            *(post(client, delivery) for _ in range(10) for client in (first, second))
        )
    assert (
        sorted(answer.json()["status"] for answer in answers) == ["accepted"] + ["duplicate"] * 19
    )
    [row] = stored(clean_db)
    assert task_messages(broker) == [{"task": "webhooks.process_events", "args": [[row.id]]}]


async def test_many_distinct_concurrent_events_are_each_stored_and_enqueued_once(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    deliveries = [deliver(new_event()) for _ in range(200)]
    async with running_app(settings) as client:
        answers = await asyncio.gather(*(post(client, item) for item in deliveries))
    assert {answer.json()["status"] for answer in answers} == {"accepted"}
    rows = stored(clean_db)
    assert {row.svix_id for row in rows} == {item.svix_id for item in deliveries}
    assert sorted(enqueued_ids(broker)) == sorted(row.id for row in rows)


async def test_events_stored_together_share_messages_of_at_most_the_batch_size(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    """One message per EVENT_BATCH_SIZE ids: workers apply each message in one transaction."""
    small_batches = settings.model_copy(update={"event_batch_size": 7})
    deliveries = [deliver(new_event()) for _ in range(60)]
    async with running_app(small_batches) as client:
        await asyncio.gather(*(post(client, item) for item in deliveries))
    batches = [message["args"][0] for message in task_messages(broker)]
    assert sorted(i for batch in batches for i in batch) == sorted(
        row.id for row in stored(clean_db)
    )
    assert max(len(batch) for batch in batches) == 7
    assert len(batches) < 60  # events that arrived together went together


async def test_concurrent_large_events_are_split_over_several_commits_and_all_stored(
    settings: Settings, clean_db: Engine, broker: redis.Redis
) -> None:
    """Twelve bodies of ~0.9 MiB exceed one batch's size cap: every one is still stored."""
    events = [new_event() for _ in range(12)]
    for event in events:
        event["data"]["padding"] = "p" * 900_000
    deliveries = [deliver(event) for event in events]
    async with running_app(settings) as client:
        answers = await asyncio.gather(*(post(client, item) for item in deliveries))
    assert [answer.json()["status"] for answer in answers] == ["accepted"] * 12
    assert {row.svix_id for row in stored(clean_db)} == {item.svix_id for item in deliveries}
    assert len(enqueued_ids(broker)) == 12
