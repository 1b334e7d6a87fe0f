"""Readiness of the web process: can it store webhooks? (DESIGN.md section 1, `GET /readyz`).

Ready means the database answers: that is all a delivery needs to be stored and answered `200`.
The broker's state is reported too, but a broker outage does not make the web unready (stored
events stay `received` and the sweeper enqueues them later).

A probe must not cost a dependency a connection: the database is asked through the engine's
pool, the broker through one kept connection (replaced only after it failed), and an answer is
reused for `max_age` seconds (one check at a time), so any number of probes makes at most one
check per second and process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from kombu import Connection
from kombu.exceptions import ChannelError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cpn_sync.settings import Settings
from cpn_sync.task_contract import QUEUES
from webhooks.publisher import publishing_app

CHECK_TIMEOUT = 1.0
OK = "ok"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ReadinessAnswer:
    database: str
    broker: str

    @property
    def ready(self) -> bool:
        return self.database == OK

    def body(self) -> dict[str, Any]:
        checks = {"database": self.database, "broker": self.broker}
        if self.ready:
            return {"status": "ready", **checks}
        return {"status": "unavailable", "failed": ["database"], **checks}


class BrokerProbe:
    """The broker check on one kept connection. A Redis broker is pinged through one redis-py
    client (kombu's Redis channel makes a client, and a connection, per command); any other
    broker gets a passive declare of the `webhooks` queue on one kept kombu connection (a queue
    that does not exist yet is an answer too)."""

    def __init__(self, settings: Settings) -> None:
        url = settings.broker_url or ""
        self._redis = (
            redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=2.0)
            if url.startswith(("redis://", "rediss://"))
            else None
        )
        self._app = publishing_app(settings)  # the broker's URL and fail-fast options
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # an abandoned check may still run in its thread

    def ping(self) -> None:
        with self._lock:
            if self._redis is not None:
                self._redis.ping()
                return
            if self._connection is None:
                self._connection = self._app.connection_for_write()
            channel: Any = self._connection.default_channel
            try:
                channel.queue_declare(queue=QUEUES[0], passive=True)
            except ChannelError:
                self._drop()  # RabbitMQ closes the channel; the broker did answer
            except Exception:
                self._drop()
                raise

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.release()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self._drop()
            if self._redis is not None:
                self._redis.close()
        self._app.close()


class Readiness:
    def __init__(self, engine: AsyncEngine, settings: Settings, *, max_age: float = 1.0) -> None:
        self._engine = engine
        self._broker = BrokerProbe(settings)
        self._max_age = max_age
        self._answer: ReadinessAnswer | None = None
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    async def answer(self) -> ReadinessAnswer:
        async with self._lock:
            if self._answer is None or time.monotonic() - self._checked_at >= self._max_age:
                database, broker = await asyncio.gather(self._database(), self._broker_state())
                self._answer = ReadinessAnswer(database, broker)
                self._checked_at = time.monotonic()
            return self._answer

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return UNAVAILABLE
        return OK

    async def _broker_state(self) -> str:
        try:
            # kombu blocks: a thread, abandoned if it overruns.
            await asyncio.wait_for(asyncio.to_thread(self._broker.ping), CHECK_TIMEOUT)
        except Exception:
            return UNAVAILABLE
        return OK

    def close(self) -> None:
        self._broker.close()
