"""The inbox writer: stores verified events in `webhook_events`, committing concurrent requests'
rows together (group commit), and answers each request only once its row is durable.

Requests queue their row; a few writer tasks each take everything queued (up to a batch) and run
one `INSERT ... SELECT ... ON CONFLICT (svix_id) DO NOTHING RETURNING` in autocommit mode: one
statement, one round trip, one WAL flush for the whole batch. There is no artificial wait: a
batch is whatever arrived while the previous one was being written, so a lone request pays one
round trip and a busy process amortises the commit over many rows.

The writer is the transaction boundary. It hands the ids of new rows to `on_new_events` only
after their commit; duplicates (already stored, or twice in one batch) are never handed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cpn_sync.logs import get_logger
from cpn_sync.unstorable import storable_text
from webhooks.errors import InboxUnavailableError

log = get_logger(__name__)

CLOSE_TIMEOUT_SECONDS = 10.0  # at shutdown, how long queued rows may take to be written

# Bodies may be up to WEBHOOK_MAX_BYTES each: keep one statement's parameters to a few MiB.
MAX_BATCH_CHARACTERS = 8 * 1024 * 1024

# The whole batch travels as ONE JSON text, `[[svix_id, event_type, clerk_user_id, occurred_ms,
# payload], ...]`, built by joining the verified bodies as they are: psycopg sends one string
# parameter (arrays of values cost ~15 µs per event to adapt), and PostgreSQL parses each payload
# into JSONB once; nothing is re-encoded in Python. Run on the driver's connection: SQLAlchemy's
# statement handling cost more than this one statement (it is the web's only write).
INSERT_EVENTS = """
    INSERT INTO webhook_events (svix_id, event_type, clerk_user_id, payload, occurred_at)
    SELECT row->>0, row->>1, row->>2, row->4, to_timestamp((row->>3)::bigint / 1000.0)
    FROM jsonb_array_elements(%s::jsonb) AS incoming (row)
    ON CONFLICT ON CONSTRAINT unique_webhook_svix_id DO NOTHING
    RETURNING id, svix_id
"""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One verified delivery, as the inbox stores it."""

    svix_id: str
    event_type: str
    clerk_user_id: str | None
    payload: str
    occurred_at_ms: int | None


@dataclass(slots=True)
class _Waiting:
    entry: InboxEntry
    answer: asyncio.Future[int | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _rows_json(entries: Sequence[InboxEntry]) -> str:
    """The batch as INSERT_EVENTS reads it; the short fields are encoded by orjson."""
    return (
        "["
        + ",".join(
            orjson.dumps(
                (entry.svix_id, entry.event_type, entry.clerk_user_id, entry.occurred_at_ms)
            ).decode()[:-1]
            + ","
            + entry.payload
            + "]"
            for entry in entries
        )
        + "]"
    )


def _answer(future: asyncio.Future[int | None], event_id: int | None) -> None:
    if not future.done():  # the request may have been cancelled meanwhile
        future.set_result(event_id)


def _fail(waiting: Sequence[_Waiting], error: Exception) -> None:
    for item in waiting:
        if not item.answer.done():
            item.answer.set_exception(error)


class Inbox:
    """Group-committing writer of `webhook_events`, one per process.

    `batch_size=1` with as many writers as pool connections gives the classic one commit per
    request, which the benchmark compares against.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        on_new_events: Callable[[list[int]], None],
        *,
        batch_size: int = 256,
        writers: int = 2,
        timeout: float = 10.0,
    ) -> None:
        self._engine = engine
        self._on_new_events = on_new_events
        self._batch_size = batch_size
        self._writer_count = writers
        self._timeout = timeout
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self._writers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._writers = [
            asyncio.create_task(self._write_forever(), name=f"inbox-writer-{number}")
            for number in range(self._writer_count)
        ]

    async def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Finish what is queued (bounded by `timeout`), then stop the writers."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)
        for writer in self._writers:
            writer.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)
        self._writers = []

    @property
    def wait_limit(self) -> float:
        """How long a request may wait for its row (one write's timeout, and a margin)."""
        return self._timeout + 2.0

    async def store(self, entry: InboxEntry) -> int | None:
        """Answer the new row's id once committed, or None when the svix id is already stored.

        Raises `InboxUnavailableError` when the row could not be written. JSON that JSONB
        cannot hold is stored with the offending values replaced (`cpn_sync.unstorable`).
        """
        if not self._writers:
            raise InboxUnavailableError("the inbox is not running", svix_id=entry.svix_id)
        waiting = _Waiting(entry)
        self._queue.put_nowait(waiting)
        return await waiting.answer

    async def _next_batch(self) -> list[_Waiting]:
        """Everything queued, up to `batch_size` rows and about MAX_BATCH_CHARACTERS of JSON."""
        batch = [await self._queue.get()]
        size = len(batch[0].entry.payload)
        while (
            len(batch) < self._batch_size
            and size < MAX_BATCH_CHARACTERS
            and not self._queue.empty()
        ):
            batch.append(self._queue.get_nowait())
            size += len(batch[-1].entry.payload)
        return batch

    async def _write_forever(self) -> None:
        connection = _WriterConnection(self._engine)
        try:
            while True:
                batch = await self._next_batch()
                try:
                    await self._write(batch, connection)
                except Exception as error:  # a bug must not leave requests waiting forever
                    log.error("inbox.writer_error", error=type(error).__name__, events=len(batch))
                    _fail(batch, InboxUnavailableError("the inbox writer failed; deliver it again"))
                    await connection.discard()
                finally:
                    for _ in batch:
                        self._queue.task_done()
        finally:
            await connection.close()

    async def _write(self, batch: Sequence[_Waiting], connection: _WriterConnection) -> None:
        """Insert one batch and answer every waiter."""
        by_svix_id: dict[str, list[_Waiting]] = {}
        for item in batch:
            by_svix_id.setdefault(item.entry.svix_id, []).append(item)
        entries = [waiting[0].entry for waiting in by_svix_id.values()]
        try:
            async with asyncio.timeout(self._timeout):
                rows = await connection.insert(entries)
        except psycopg.DataError:
            # PostgreSQL refused a value (a \u0000 that JSONB cannot hold): find which row.
            if len(entries) > 1:
                for waiting in by_svix_id.values():
                    await self._write(waiting, connection)
                return
            await self._store_repaired(batch, connection)
            return
        except (psycopg.Error, exc.SQLAlchemyError, OSError, TimeoutError) as error:
            log.warning("inbox.write_failed", error=type(error).__name__, events=len(entries))
            await connection.discard()
            for svix_id, waiting in by_svix_id.items():
                _fail(
                    waiting,
                    InboxUnavailableError(
                        "the event could not be stored; deliver it again", svix_id=svix_id
                    ),
                )
            return
        new_ids = dict(rows)
        for svix_id, waiting in by_svix_id.items():
            first, *copies = waiting
            _answer(first.answer, new_ids.get(svix_id))
            for copy in copies:
                _answer(copy.answer, None)
        if new_ids:
            self._on_new_events(list(new_ids.values()))

    async def _store_repaired(
        self, waiting: Sequence[_Waiting], connection: _WriterConnection
    ) -> None:
        """The one row PostgreSQL refused, stored with what it cannot hold replaced and named
        (`cpn_sync.unstorable`): a verified event is never refused for its content."""
        entry = waiting[0].entry
        repaired = storable_text(entry.payload)
        if repaired is None:  # refused for something else: Clerk delivers it again
            log.error("inbox.payload_refused", svix_id=entry.svix_id)
            _fail(
                waiting,
                InboxUnavailableError("the event could not be stored", svix_id=entry.svix_id),
            )
            return
        fixed = dataclasses.replace(entry, payload=repaired)
        await self._write([_Waiting(fixed, item.answer) for item in waiting], connection)


class _WriterConnection:
    """The connection a writer keeps between batches: no pool checkout or ping per batch.

    Checked out of the engine's pool (so the pool's size and shutdown still govern it); the
    statement runs on psycopg's own connection underneath. A kept connection found dead (the
    server restarted, a proxy dropped it) is replaced once within the same batch. Retrying is
    safe: a row that the lost attempt did commit comes back as a duplicate, stays `received`,
    and the sweeper enqueues it.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._driver: psycopg.AsyncConnection[Any] | None = None

    async def insert(self, entries: Sequence[InboxEntry]) -> list[tuple[str, int]]:
        """Answer (svix id, new row id) for each entry that was not stored before."""
        if self._driver is not None:
            try:
                return await self._insert(self._driver, entries)
            except psycopg.OperationalError:
                if not self._driver.closed:
                    raise
                await self.discard()
        self._connection = await self._engine.connect()
        raw = await self._connection.get_raw_connection()
        self._driver = raw.driver_connection
        assert self._driver is not None
        return await self._insert(self._driver, entries)

    @staticmethod
    async def _insert(
        driver: psycopg.AsyncConnection[Any], entries: Sequence[InboxEntry]
    ) -> list[tuple[str, int]]:
        async with driver.cursor() as cursor:
            await cursor.execute(INSERT_EVENTS, (_rows_json(entries),))
            return [(svix_id, event_id) for event_id, svix_id in await cursor.fetchall()]

    async def discard(self) -> None:
        self._driver = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.invalidate()
            self._connection = None

    async def close(self) -> None:
        self._driver = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
