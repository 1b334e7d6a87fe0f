"""Fixtures for the worker tests: a clean database after each test, and in-process processing
that keeps the follow-up tasks a real worker would have been sent."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import redis
from celery import Celery
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, text

from cpn_sync.task_contract import PROCESS_EVENT, PROCESS_EVENTS, QUEUES, celery_config
from tests.conftest import APP_TABLES
from tests.worker_process import WorkerProcess

WORKER_TABLES = (
    *APP_TABLES,
    "deleted_users",
    "scheduled_job_runs",
    "clerk_sync_state",
    "me_sync_requests",
)

# Hypothesis profiles of these tests (applied per test, not loaded globally): CI runs the full
# number of examples; `HYPOTHESIS_PROFILE=dev` is quicker while editing.
settings.register_profile(
    "workers-ci",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("workers-dev", parent=settings.get_profile("workers-ci"), max_examples=30)
HYPOTHESIS_PROFILE = settings.get_profile(
    "workers-dev" if os.environ.get("HYPOTHESIS_PROFILE") == "dev" else "workers-ci"
)


def truncate_all(engine: Engine) -> None:
    """DELETE rather than TRUNCATE: much quicker on the few rows a test leaves."""
    with engine.begin() as connection:
        for table in WORKER_TABLES:
            connection.execute(text(f"DELETE FROM {table}"))


def purge_queues(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).delete(*QUEUES)


def take_queued(redis_url: str, queue: str) -> list[tuple[str, list[Any]]]:
    """Remove the Celery messages waiting in `queue`; answer (task name, args) of each."""
    client = redis.Redis.from_url(redis_url)
    messages = []
    while (raw := client.rpop(queue)) is not None:
        message = json.loads(cast(bytes, raw))
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages


@pytest.fixture(scope="session", autouse=True)
def worker_engine() -> Iterator[None]:
    """In-process processing uses the workers' own engine; close it when the run ends."""
    yield
    from workers.core.engine import close_engine

    close_engine()


@pytest.fixture(autouse=True)
def clean_tables(engine: Engine, redis_url: str) -> Iterator[Engine]:
    """Processing commits for real: every worker test starts and ends with empty tables and
    empty queues."""
    truncate_all(engine)
    purge_queues(redis_url)
    yield engine
    truncate_all(engine)
    purge_queues(redis_url)


@dataclass
class Processor:
    """Runs `apply_event` in this process; collects what it would have enqueued."""

    follow_ups: list[tuple[str, list[Any]]] = field(default_factory=list)

    def publish(self, name: str, args: list[Any]) -> None:
        self.follow_ups.append((name, args))

    batch_size: int = 1  # one event per call unless a test is about batches

    def __call__(self, event_id: int, *, suspect: bool = False) -> str:
        from workers.inbox.tasks import apply_event

        return apply_event(
            event_id, publish=self.publish, suspect=suspect, batch_size=self.batch_size
        )

    def batch(self, event_ids: list[int]) -> dict[int, str]:
        """What a worker does with the web's message: apply these events in one transaction."""
        from workers.inbox.tasks import apply_events

        return apply_events(event_ids, publish=self.publish)

    def released(self) -> list[int]:
        return [args[0] for name, args in self.follow_ups if name == PROCESS_EVENT]

    def drain(self) -> None:
        """Process follow-up events as a worker would, until none are left."""
        while self.follow_ups:
            name, args = self.follow_ups.pop(0)
            if name == PROCESS_EVENT:
                self(args[0], suspect=bool(args[1:] and args[1]))
            elif name == PROCESS_EVENTS:
                self.batch(args[0])


@pytest.fixture
def process() -> Processor:
    return Processor()


@pytest.fixture(scope="module")
def no_flush_wait(engine: Engine) -> Iterator[None]:
    """For tests of many tiny transactions whose subject is not durability: commits do not
    wait for the disk (this database only, for the module)."""
    from workers.core.engine import close_engine

    database = engine.url.database
    with engine.begin() as connection:
        connection.execute(text(f'ALTER DATABASE "{database}" SET synchronous_commit = off'))
    engine.dispose()
    close_engine()
    yield
    with engine.begin() as connection:
        connection.execute(text(f'ALTER DATABASE "{database}" RESET synchronous_commit'))
    engine.dispose()
    close_engine()


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.2,
    describe: Callable[[], str] | None = None,
) -> None:
    """Poll until `condition()` holds; fail naming `what` (and what `describe` says of the
    state then) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            state = f"; {describe()}" if describe else ""
            raise AssertionError(f"not within {timeout:.0f} s: {what}{state}")
        time.sleep(interval)


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT status, count(*) FROM webhook_events GROUP BY status")
        ).all()
    return {row[0]: row[1] for row in rows}


@pytest.fixture(scope="session")
def web_publisher() -> Iterator[Celery]:
    """Publishes as the web process does: by task name, from the shared configuration only."""
    from cpn_sync.settings import get_settings

    app = Celery("test-web-publisher")
    app.conf.update(celery_config(get_settings()))
    yield app
    app.close()


def send_as_web(web_publisher: Celery, event_ids: list[int], per_message: int = 10) -> None:
    """The messages the web sends for these stored events: `process_events`, in batches."""
    for start in range(0, len(event_ids), per_message):
        batch = event_ids[start : start + per_message]
        web_publisher.send_task(PROCESS_EVENTS, args=[batch], ignore_result=True)


@contextlib.contextmanager
def running(process: WorkerProcess) -> Iterator[WorkerProcess]:
    """Start; on the way out stop it (SIGKILL if it does not stop) and drop its log."""
    try:
        yield process.start()
    finally:
        process.stop()
        process.log_path.unlink(missing_ok=True)
