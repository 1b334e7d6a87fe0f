"""Wakes the calls waiting for their run: the worker's transaction that records a run's outcome
sends `NOTIFY me_sync_applied, '<row id>'` (delivered at its commit, never for a rollback), and
one connection per web process listens and wakes the calls of that row.

A call re-reads its row when woken, and at least every FALLBACK_SECONDS whatever happens (the
listener reconnecting after an outage may miss notifications): a lost notification costs
latency, never an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import psycopg

from cpn_sync.logs import get_logger
from cpn_sync.settings import libpq_url

log = get_logger(__name__)

CHANNEL = "me_sync_applied"
FALLBACK_SECONDS = 0.5
RECONNECT_SECONDS = 1.0


class RunNotifications:
    def __init__(self, database_url: str, application_name: str) -> None:
        self._url = libpq_url(database_url)
        self._application_name = application_name
        self._waiters: dict[int, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="me-sync-notifications")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def watching(self, request_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever a run of this row commits, while the block runs."""
        event = asyncio.Event()
        self._waiters.setdefault(request_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiters.get(request_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[request_id]

    async def _listen_forever(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=self._application_name,
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    async for notification in connection.notifies():
                        self._wake(notification.payload)
            except (psycopg.Error, OSError) as error:
                log.warning("me_sync.listener_lost", error=type(error).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)

    def _wake(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            for event in self._waiters.get(int(payload), ()):
                event.set()
