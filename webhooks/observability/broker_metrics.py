"""Gauges of the queues, in the web's `/metrics`: messages waiting per queue (from the broker,
Redis or RabbitMQ) and the age of each queue's canary (from Redis, `cpn_sync.canaries`).

Like the inbox gauges they are refreshed by a scrape that finds them older than a few seconds,
in a thread (kombu and redis-py block), bounded by a timeout; when the broker or Redis does not
answer, the last values stay and a warning is logged (readiness and the enqueue-failure counter
tell the outage).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import Gauge

from cpn_sync.broker_queues import queue_lengths
from cpn_sync.canaries import canary_ages
from cpn_sync.logs import get_logger
from cpn_sync.redis_client import redis_client
from cpn_sync.settings import Settings
from cpn_sync.task_contract import QUEUES
from webhooks.observability.metrics import CachedGauges
from webhooks.publisher import publishing_app

log = get_logger(__name__)

QUEUE_MESSAGES = Gauge(
    "cpn_queue_messages",
    "Messages waiting in each broker queue, not yet taken by a worker.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
CANARY_AGE = Gauge(
    "cpn_canary_age_seconds",
    "Seconds since a worker last ran the queue's canary task; +Inf when none ever has.",
    ["queue"],
    multiprocess_mode="mostrecent",
)


class BrokerGauges(CachedGauges):
    def __init__(
        self,
        settings: Settings,
        *,
        max_age: float = 5.0,
        timeout: float = 2.0,
        queues: Sequence[str] = QUEUES,
    ) -> None:
        super().__init__(max_age=max_age, timeout=timeout)
        self._app = publishing_app(settings)  # the broker's URL and fail-fast options
        self._canaries = redis_client(settings, timeout=timeout)
        self._queues = tuple(queues)

    async def _refresh(self) -> None:
        await asyncio.gather(self._refresh_queue_lengths(), self._refresh_canary_ages())

    async def _refresh_queue_lengths(self) -> None:
        try:
            lengths = await asyncio.wait_for(
                asyncio.to_thread(self._read_queue_lengths), self._timeout
            )
        except Exception as error:
            log.warning("metrics.broker_query_failed", error=type(error).__name__)
            return
        for queue, count in lengths.items():
            QUEUE_MESSAGES.labels(queue=queue).set(count)

    def _read_queue_lengths(self) -> dict[str, int]:
        with self._app.connection_for_read() as connection:
            return queue_lengths(connection, self._queues)

    async def _refresh_canary_ages(self) -> None:
        if self._canaries is None:
            return
        try:
            ages = await asyncio.wait_for(
                asyncio.to_thread(canary_ages, self._canaries, self._queues), self._timeout
            )
        except Exception as error:
            log.warning("metrics.canary_query_failed", error=type(error).__name__)
            return
        for queue, age in ages.items():
            CANARY_AGE.labels(queue=queue).set(age)

    def close(self) -> None:
        if self._canaries is not None:
            self._canaries.close()
        self._app.close()
