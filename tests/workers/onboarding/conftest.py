"""Fixtures of the session-data migration tests that cross into event processing and the
broker: in-process event processing, clean worker tables, and the CPN requests sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine

from tests.workers.conftest import Processor, purge_queues, take_queued, truncate_all
from tests.workers.onboarding.factories import Requests

REQUEST_KEYS = "cpn:recompute-requested:*"  # workers.cpn.requests.request_key of any user


@pytest.fixture(scope="session")
def _workers_engine() -> Iterator[None]:
    """In-process processing opens the workers' own engine; close it when the run ends."""
    yield
    from workers.core.engine import close_engine

    close_engine()


@pytest.fixture
def process(_workers_engine: None) -> Processor:
    """Applies a stored event in this process and keeps the follow-ups it would have sent."""
    return Processor()


@pytest.fixture
def worker_tables(engine: Engine, redis_url: str) -> Iterator[Engine]:
    """For tests whose processing commits: empty tables (tombstones too) and queues, before
    and after."""
    truncate_all(engine)
    purge_queues(redis_url)
    yield engine
    truncate_all(engine)
    purge_queues(redis_url)


@pytest.fixture
def recompute_requests(redis_url: str) -> Iterator[Requests]:
    """Takes the messages sent to the `cpn` queue, oldest first, as (task name, args). The
    queue and the CPN feature's coalescing keys are emptied before and after: no worker consumes
    the queue here, and user ids may start again after a test."""
    client = redis.Redis.from_url(redis_url)

    def empty() -> None:
        client.delete("cpn", *client.scan_iter(REQUEST_KEYS))

    empty()
    yield lambda: take_queued(redis_url, "cpn")
    empty()
    client.close()
