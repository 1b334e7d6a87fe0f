"""Fixtures for the metrics tests: a Redis database of their own (broker and canary store, so
that no other test's worker consumes their messages), scrapes parsed into samples, and a
publisher that sends by task name as the web and beat do."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from cpn_sync.celery_config import celery_config
from cpn_sync.settings import Settings
from tests.conftest import TEST_WEBHOOK_SECRET

# What the worker subprocesses of these tests get: the Redis database below as broker and canary
# store (an empty CELERY_BROKER_URL: not the RabbitMQ of a TEST_BROKER_URL run, whose queues other
# runs on the machine may share), task metrics off unless a test asks for them.
REDIS_DB = 12


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def metrics_redis_url(redis_url: str) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"


@pytest.fixture
def metrics_redis(metrics_redis_url: str) -> Iterator[redis.Redis]:
    """The database, emptied before and after the test."""
    client = redis.Redis.from_url(metrics_redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(database_url: str, metrics_redis_url: str, clean_db: Engine) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=metrics_redis_url,
        celery_broker_url=None,
        clerk_webhook_secret=TEST_WEBHOOK_SECRET,
        log_format="json",
    )


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    assert settings.redis_url is not None
    return {"REDIS_URL": settings.redis_url, "CELERY_BROKER_URL": "", **extra}


@pytest.fixture
def publisher(settings: Settings) -> Iterator[Celery]:
    app = Celery("test-metrics-publisher", set_as_current=False)
    app.conf.update(celery_config(settings))
    yield app
    app.close()


@dataclass(frozen=True)
class Scrape:
    """One scrape: every sample by name and labels."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        return cls(
            {
                (item.name, frozenset(item.labels.items())): item.value
                for family in text_string_to_metric_families(text)
                for item in family.samples
            }
        )

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: value for (found, labels), value in self.samples.items() if found == name}


def scrape_url(url: str) -> Scrape:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return Scrape.parse(response.text)


def poll(
    read: Callable[[], Scrape], condition: Callable[[Scrape], bool], timeout: float, what: str
) -> Scrape:
    """Scrape until `condition` holds; fail naming `what` (and the last scrape) after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Scrape | None = None
    while True:
        with contextlib.suppress(httpx.HTTPError):
            last = read()
            if condition(last):
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}; last scrape: {last}")
        time.sleep(0.3)


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
