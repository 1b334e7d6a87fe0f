"""Fixtures for the metrics tests: the HTTP edge's (a Redis database of their own as broker and
canary store, so that no other test's worker consumes their messages, and the app's settings on
it), scrapes parsed into samples, and a publisher that sends by task name as the web and beat do.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeGuard

import httpx
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from cpn_sync.settings import Settings
from cpn_sync.task_contract import celery_config
from tests.webhooks.conftest import anyio_backend, broker, broker_url, settings

__all__ = ["anyio_backend", "broker", "broker_url", "settings"]


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """A worker subprocess on the test's Redis database: an empty CELERY_BROKER_URL, not the
    RabbitMQ of a TEST_BROKER_URL run, whose queues other runs on the machine may share."""
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


def is_finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)
