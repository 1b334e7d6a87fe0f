"""The read every call starts with (is the user stored, is the id tombstoned), for all the calls
of a process at once: a lookup task takes whatever calls are queued and answers them with one
statement on a connection it keeps, as the inbox writer does for webhook rows. A burst of page
loads then costs one round trip per batch, not a pool checkout, ping and statement each."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cpn_sync.logs import get_logger

log = get_logger(__name__)

MAX_BATCH = 500
_LOOK_UP = """
    SELECT wanted.clerk_id, users.id,
           EXISTS (SELECT 1 FROM deleted_users WHERE deleted_users.clerk_id = wanted.clerk_id)
    FROM unnest(%s::text[]) AS wanted (clerk_id)
    LEFT JOIN users ON users.clerk_id = wanted.clerk_id
"""


class LookupUnavailableError(Exception):
    """The database did not answer the lookup."""


@dataclass(frozen=True, slots=True)
class KnownUser:
    user_id: int | None
    deleted: bool


@dataclass(slots=True)
class _Waiting:
    clerk_id: str
    answer: asyncio.Future[KnownUser] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class UserLookups:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._connection: AsyncConnection | None = None
        self._driver: psycopg.AsyncConnection[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._look_up_forever(), name="me-sync-lookups")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._discard()

    async def look_up(self, clerk_id: str) -> KnownUser:
        """Raises LookupUnavailableError when the database does not answer."""
        waiting = _Waiting(clerk_id)
        self._queue.put_nowait(waiting)
        return await waiting.answer

    async def _look_up_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                found = await self._run([item.clerk_id for item in batch])
            except Exception as error:  # a bug or an outage must not leave calls waiting
                log.warning("me_sync.lookup_failed", error=type(error).__name__, calls=len(batch))
                await self._discard()
                for item in batch:
                    if not item.answer.done():
                        item.answer.set_exception(LookupUnavailableError())
                continue
            for item in batch:
                if not item.answer.done():  # the call may have been cancelled meanwhile
                    item.answer.set_result(found[item.clerk_id])

    async def _run(self, clerk_ids: list[str]) -> dict[str, KnownUser]:
        """One statement; a kept connection found dead is replaced once."""
        if self._driver is not None:
            try:
                return await self._execute(self._driver, clerk_ids)
            except psycopg.OperationalError:
                if not self._driver.closed:
                    raise
                await self._discard()
        async with asyncio.timeout(10):
            self._connection = await self._engine.connect()
            raw = await self._connection.get_raw_connection()
        self._driver = raw.driver_connection
        assert self._driver is not None
        return await self._execute(self._driver, clerk_ids)

    @staticmethod
    async def _execute(
        driver: psycopg.AsyncConnection[Any], clerk_ids: list[str]
    ) -> dict[str, KnownUser]:
        async with asyncio.timeout(10), driver.cursor() as cursor:
            await cursor.execute(_LOOK_UP, (clerk_ids,))
            rows = await cursor.fetchall()
        return {clerk_id: KnownUser(user_id, bool(deleted)) for clerk_id, user_id, deleted in rows}

    async def _discard(self) -> None:
        self._driver = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.invalidate()
            self._connection = None
