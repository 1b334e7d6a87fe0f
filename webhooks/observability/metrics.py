"""Prometheus metrics of the web process.

`cpn-sync web` runs several uvicorn worker processes, so every metric is written through
prometheus-client's multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set (the `web` command
sets it to a fresh directory before the workers start): a scrape of any worker answers the sum
over all of them. Without it (tests in one process) the default registry is used.

The inbox gauges come from the database, not from counting requests: they are the same for every
process, so they keep the most recent value written by any of them, and a scrape queries at most
once per `max_age` seconds and process.
"""

from __future__ import annotations

import asyncio
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cpn_sync.logs import get_logger
from db.models import WEBHOOK_EVENT_STATUSES, EventStatus, WebhookEvent
from webhooks.errors import Reason
from webhooks.observability import clerk_sync

log = get_logger(__name__)

ACCEPTED = Counter("cpn_webhook_events_accepted", "New events stored in the inbox.")
DUPLICATES = Counter(
    "cpn_webhook_events_duplicate", "Deliveries of an svix id that was already stored."
)
REJECTED = Counter(
    "cpn_webhook_events_rejected", "Deliveries answered with a non-2xx status.", ["reason"]
)
ENQUEUED = Counter(
    "cpn_webhook_enqueued", "Events whose ids were published in process_events messages."
)
ENQUEUE_FAILURES = Counter(
    "cpn_webhook_enqueue_failures",
    "Stored events whose task message could not be published (the sweeper enqueues them).",
)
REQUEST_SECONDS = Histogram(
    "cpn_webhook_request_seconds",
    "Time to answer POST /webhooks/clerk.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INBOX_EVENTS = Gauge(
    "cpn_webhook_inbox_events",
    "Rows of webhook_events by status.",
    ["status"],
    multiprocess_mode="mostrecent",
)
OLDEST_RECEIVED_AGE = Gauge(
    "cpn_webhook_inbox_oldest_received_age_seconds",
    "Age of the oldest webhook_events row still `received` (0 when none).",
    multiprocess_mode="mostrecent",
)
UNRESOLVED_STATUSES = (EventStatus.FAILED, EventStatus.WAITING)
OLDEST_UNRESOLVED_AGE = Gauge(
    "cpn_inbox_oldest_unresolved_age_seconds",
    "Age of the oldest webhook_events row still `failed` or `waiting` (0 when none): its "
    "payload is kept past the retention until it is replayed, released or its user deleted.",
    ["status"],
    multiprocess_mode="mostrecent",
)

for _reason in Reason:  # every reason shows up from the first scrape, at 0
    REJECTED.labels(reason=_reason.value)


def render() -> tuple[bytes, str]:
    """The exposition text for a scrape, summed over processes in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


_COUNT_BY_STATUS = select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
_OLDEST_RECEIVED_AGE = select(
    func.coalesce(func.extract("epoch", func.now() - func.min(WebhookEvent.received_at)), 0)
).where(WebhookEvent.status == EventStatus.RECEIVED)
_OLDEST_UNRESOLVED_AGE = (
    select(
        WebhookEvent.status,
        func.extract("epoch", func.now() - func.min(WebhookEvent.received_at)),
    )
    .where(WebhookEvent.status.in_(UNRESOLVED_STATUSES))
    .group_by(WebhookEvent.status)
)


class CachedGauges:
    """Gauges read from another system: a scrape refreshes them when they are older than
    `max_age` seconds (one reader at a time), never once per scrape."""

    def __init__(self, *, max_age: float, timeout: float) -> None:
        self._max_age = max_age
        self._timeout = timeout
        self._refreshed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh_if_stale(self) -> None:
        async with self._lock:
            if time.monotonic() - self._refreshed_at < self._max_age:
                return
            self._refreshed_at = time.monotonic()  # also throttles retries while it is down
            await self._refresh()

    async def _refresh(self) -> None:
        """Read and set the gauges; on failure keep the last values (a scrape still answers)."""
        raise NotImplementedError


class InboxGauges(CachedGauges):
    """The gauges read from the database: the inbox's, and the Clerk convergence jobs'."""

    def __init__(self, engine: AsyncEngine, *, max_age: float = 5.0, timeout: float = 1.0) -> None:
        super().__init__(max_age=max_age, timeout=timeout)
        self._engine = engine

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as connection:
                counts = {
                    status: count for status, count in await connection.execute(_COUNT_BY_STATUS)
                }
                age = (await connection.execute(_OLDEST_RECEIVED_AGE)).scalar_one()
                unresolved = {
                    status: age for status, age in await connection.execute(_OLDEST_UNRESOLVED_AGE)
                }
                await clerk_sync.refresh(connection)
        except Exception as error:
            log.warning("metrics.inbox_query_failed", error=type(error).__name__)
            return
        for status in WEBHOOK_EVENT_STATUSES:
            INBOX_EVENTS.labels(status=status).set(counts.get(status, 0))
        OLDEST_RECEIVED_AGE.set(float(age))
        for status in UNRESOLVED_STATUSES:
            OLDEST_UNRESOLVED_AGE.labels(status=status).set(float(unresolved.get(status, 0)))
