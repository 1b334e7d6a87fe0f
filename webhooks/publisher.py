"""Enqueues `webhooks.process_events(event_ids)` for new inbox rows: off the event loop, in batches.

A daemon thread owns one broker connection. The event loop hands it ids (never blocking), the
thread gathers what arrives within a few milliseconds and publishes it through one kombu publish
batch (one Redis pipeline round trip), one message per EVENT_BATCH_SIZE ids: a worker applies
each message's events in one transaction, so under load neither Celery's cost per message nor
the commit is paid per event. While messages wait in the queue (the workers are behind), the
thread gathers for longer, until a message is full, the queue is empty, or `max_linger` has
passed: a new message would wait behind the others anyway, and a fuller one saves the workers
a transaction and a message's cost when they need it most. An idle queue gets every message
after `linger`. Messages are built by Celery's own `create_task_message`, so the workers see
exactly what `send_task` would send, at a fraction of its cost per message.

It also sends `webhooks.sync_me(request_id)` for the first-request sync (`POST /api/me/sync`):
one message per stored request, published at once (no linger: a request waits for its answer).

A failure never reaches the request: the row is already durable and stays `received`, and the
workers' sweeper enqueues it again. Failures are counted (`cpn_webhook_enqueue_failures_total`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu import Connection

from cpn_sync.logs import get_logger
from cpn_sync.settings import Settings
from cpn_sync.task_contract import PROCESS_EVENTS, SYNC_ME, celery_config
from webhooks.observability import metrics

log = get_logger(__name__)

# Fail fast instead of blocking the publishing thread: what is not published now is swept later.
PUBLISHER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 5.0,
    "max_retries": 0,
}
CLOSE_TIMEOUT_SECONDS = 5.0  # at shutdown, how long the last ids may take to be published
_STOP: list[int] = []  # an empty hand-over, by identity: the thread finishes and stops


class _SyncRequests(list[int]):
    """A hand-over of `me_sync_requests` ids rather than event ids."""


def publishing_app(settings: Settings) -> Celery:
    """A Celery app used only to build and route messages, configured exactly as the workers'."""
    app = Celery("cpn_sync.web", set_as_current=False)
    config = celery_config(settings)
    config["broker_transport_options"] = {
        **config["broker_transport_options"],
        **PUBLISHER_TRANSPORT_OPTIONS,
    }
    config["broker_connection_timeout"] = 1.0
    app.conf.update(config)
    return app


class Publisher:
    """The publishing thread of one web process; `submit` is its only entry from the loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        batch_size: int = 500,
        linger: float = 0.02,
        max_linger: float = 0.1,
        max_pending: int = 10_000,
    ) -> None:
        self._app = publishing_app(settings)
        self._queue_entity = self._app.amqp.router.route({}, PROCESS_EVENTS)["queue"]
        self._batch_size = batch_size
        self._ids_per_message = settings.event_batch_size
        self._linger = linger
        self._max_linger = max_linger
        # One item per inbox commit (its new ids): one wake-up of this thread per commit. A
        # SimpleQueue (C, no lock in Python) costs a fraction of queue.Queue on the event loop;
        # its bound is checked by hand.
        self._pending: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
        self._max_pending = max_pending
        self._connection: Connection | None = None
        self._thread = threading.Thread(target=self._run, name="cpn-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, event_ids: Sequence[int]) -> None:
        """Hand over the ids of one commit; called on the event loop, so it never waits."""
        if self._pending.qsize() >= self._max_pending:
            metrics.ENQUEUE_FAILURES.inc(len(event_ids))
            log.warning("webhook.enqueue_dropped", events=len(event_ids), reason="backlog_full")
            return
        self._pending.put_nowait(list(event_ids))

    def submit_sync(self, request_id: int) -> None:
        """Hand over one stored `me_sync_requests` row; on the event loop, never waits. A
        dropped one is not lost: the waiting request answers 202 and its caller asks again."""
        if self._pending.qsize() >= self._max_pending:
            metrics.ENQUEUE_FAILURES.inc()
            log.warning("me_sync.enqueue_dropped", request_id=request_id, reason="backlog_full")
            return
        self._pending.put_nowait(_SyncRequests((request_id,)))

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Publish what is queued (bounded by `timeout`), then stop the thread."""
        if not self._thread.is_alive():
            return
        self._pending.put(_STOP)
        self._thread.join(timeout)
        if not self._thread.is_alive():  # else it still uses the connection; it is a daemon
            self._drop_connection()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, syncs, stopping = self._next_batch()
            if batch or syncs:
                self._publish_or_count(batch, syncs)

    def _next_batch(self) -> tuple[list[int], list[int], bool]:
        """Wait for ids, sleep `linger` seconds, then take what arrived meanwhile: one round
        trip to the broker then carries many messages (a few ms more before the worker sees
        them). While this thread sleeps, handing over wakes nobody (a wake-up per commit cost
        the event loop a GIL switch each). A sync request is not lingered for. While messages
        wait in the queue, gather on towards a full message (`max_linger` at most). Answers the
        event ids, the sync request ids and whether `close` asked to stop."""
        handed = self._pending.get()
        if handed is _STOP:
            return [], [], True
        batch: list[int] = []
        syncs: list[int] = []
        (syncs if isinstance(handed, _SyncRequests) else batch).extend(handed)
        if batch:
            time.sleep(self._linger)
        stopping = self._take_handed(batch, syncs)
        deadline = time.monotonic() + self._max_linger - self._linger
        while not (stopping or syncs) and len(batch) < self._ids_per_message:
            if time.monotonic() >= deadline or self._queued_messages() == 0:
                break  # no later than the queue empties: holding back must cost no freshness
            time.sleep(self._linger)
            stopping = self._take_handed(batch, syncs)
        return batch, syncs, stopping

    def _take_handed(self, batch: list[int], syncs: list[int]) -> bool:
        """Add what was handed over meanwhile, up to `batch_size` ids; answer whether `close`
        asked to stop."""
        while len(batch) + len(syncs) < self._batch_size:
            try:
                handed = self._pending.get_nowait()
            except queue.Empty:
                break
            if handed is _STOP:
                return True
            (syncs if isinstance(handed, _SyncRequests) else batch).extend(handed)
        return False

    def _queued_messages(self) -> int:
        """How many messages wait in the events' queue (one round trip); 0 when unknown, so
        that an unknown depth never delays a message."""
        if self._connection is None:
            return 0
        try:
            declared = self._queue_entity(self._connection.default_channel).queue_declare()
        except Exception:  # the publish that follows finds out, and counts it
            return 0
        return int(declared.message_count)

    def _publish_or_count(self, event_ids: list[int], sync_ids: list[int]) -> None:
        try:
            self._publish(event_ids, sync_ids)
        except Exception as error:  # the rows stay `received`; the sweeper enqueues them again
            metrics.ENQUEUE_FAILURES.inc(len(event_ids) + len(sync_ids))
            log.warning(
                "webhook.enqueue_failed",
                error=type(error).__name__,
                events=len(event_ids),
                sync_requests=len(sync_ids),
                first_event_id=event_ids[0] if event_ids else None,
            )
            self._drop_connection()
        else:
            metrics.ENQUEUED.inc(len(event_ids))

    def _publish(self, event_ids: list[int], sync_ids: list[int]) -> None:
        if self._connection is None:
            self._connection = self._app.connection_for_write()
        amqp: Any = self._app.amqp
        with amqp.Producer(self._connection) as producer, producer.batch(max_size=1000):
            producer.maybe_declare(self._queue_entity)
            messages: list[tuple[str, list[int] | int]] = [
                (PROCESS_EVENTS, event_ids[start : start + self._ids_per_message])
                for start in range(0, len(event_ids), self._ids_per_message)
            ]
            messages += [(SYNC_ME, request_id) for request_id in sync_ids]
            for name, argument in messages:
                count = len(argument) if isinstance(argument, list) else 1
                message = amqp.create_task_message(
                    str(uuid.uuid4()),
                    name,
                    (argument,),
                    {},
                    ignore_result=True,
                    argsrepr=f"({count} event ids)" if name == PROCESS_EVENTS else f"({argument},)",
                    kwargsrepr="{}",
                )
                amqp.send_task_message(
                    producer,
                    name,
                    message,
                    queue=self._queue_entity,
                    declare=[],
                    retry=False,
                )

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.release()
            self._connection = None
