"""Fixtures of the onboarding tests that cross into event processing and the broker: clean
worker tables, and the CPN requests sent (in-process processing is `tests/workers`' own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine

from tests.workers.conftest import take_queued
from tests.workers.onboarding.factories import Requests

REQUEST_KEYS = "cpn:recompute-requested:*"  # workers.cpn.requests.request_key of any user


@pytest.fixture
def worker_tables(clean_tables: Engine) -> Engine:
    """For tests whose processing commits: every worker test starts and ends with empty tables
    (tombstones too) and queues (`tests/workers/conftest.py`)."""
    return clean_tables


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
