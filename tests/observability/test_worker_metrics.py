"""Task metrics of a real `cpn-sync worker` (prefork, two pool processes), scraped from the
main process on WORKER_METRICS_PORT."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from prometheus_client.multiprocess import MultiProcessCollector

from cpn_sync.local import free_port
from cpn_sync.settings import Settings
from cpn_sync.task_contract import CPN_CANARY, PROCESS_EVENT, WEBHOOKS_CANARY
from tests.observability.conftest import Scrape, poll, scrape_url, worker_env
from tests.webhooks.conftest import closed_port_url
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running

pytestmark = pytest.mark.slow

CANARIES_SENT = {WEBHOOKS_CANARY: 24, CPN_CANARY: 12}
UNKNOWN_TASK = "webhooks.no_such_task"
TASKS = "cpn_worker_tasks_total"


@pytest.fixture
def worker(settings: Settings, broker: object) -> Iterator[WorkerProcess]:
    """A worker whose database is unreachable: a `process_event` is retried once and then
    fails (EVENT_MAX_RETRIES=1); the canaries need only Redis and succeed."""
    env = worker_env(
        settings,
        WORKER_METRICS_PORT=str(free_port()),
        DATABASE_URL=closed_port_url("postgresql"),
        EVENT_MAX_RETRIES="1",
        EVENT_RETRY_BACKOFF_MAX_SECONDS="1",
    )
    with running(WorkerProcess(concurrency=2, extra_env=env)) as process:
        yield process


def metrics_url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.env['WORKER_METRICS_PORT']}/metrics"


def tasks_by_outcome(scrape: Scrape) -> dict[tuple[str, str], float]:
    """The non-zero task counters: (task, outcome) -> count."""
    return {
        (dict(labels)["task"], dict(labels)["outcome"]): value
        for labels, value in scrape.series(TASKS).items()
        if value
    }


def count_by_process(metrics_dir: Path, task: str, outcome: str) -> dict[int, float]:
    """Each process's own non-zero count of (task, outcome), from its own file: pid -> count."""
    wanted = {"task": task, "outcome": outcome}
    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        merge: Any = MultiProcessCollector.merge
        for metric in merge([str(path)], accumulate=False):
            for item in metric.samples:
                if item.name == TASKS and item.labels == wanted and item.value:
                    counts[int(path.stem.removeprefix("counter_"))] = item.value
    return counts


def test_task_counts_and_durations_add_up_over_the_pool_processes(
    worker: WorkerProcess, publisher: Celery
) -> None:
    for task, count in CANARIES_SENT.items():
        for _ in range(count):
            publisher.send_task(task, ignore_result=True)
    publisher.send_task(PROCESS_EVENT, args=[424242], ignore_result=True)
    publisher.send_task(UNKNOWN_TASK, queue="webhooks", ignore_result=True)
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    publisher.send_task(CPN_CANARY, expires=an_hour_ago, ignore_result=True)

    expected = {
        **{(task, "succeeded"): float(count) for task, count in CANARIES_SENT.items()},
        (PROCESS_EVENT, "retried"): 1.0,
        (PROCESS_EVENT, "failed"): 1.0,
        (UNKNOWN_TASK, "rejected"): 1.0,
        (CPN_CANARY, "expired"): 1.0,
    }
    scrape = poll(
        lambda: scrape_url(metrics_url(worker)),
        lambda found: all(tasks_by_outcome(found).get(key, 0) >= n for key, n in expected.items()),
        60,
        "every task counted",
    )
    assert tasks_by_outcome(scrape) == expected

    # One duration per run (the retry ran twice), in cumulative buckets that end at the count.
    runs = {**CANARIES_SENT, PROCESS_EVENT: 2}
    for task, count in runs.items():
        assert scrape.value("cpn_worker_task_seconds_count", task=task) == count
        buckets = sorted(
            (float(dict(labels)["le"]), value)
            for labels, value in scrape.series("cpn_worker_task_seconds_bucket").items()
            if dict(labels)["task"] == task
        )
        assert buckets[-1] == (float("inf"), count)
        assert [value for _, value in buckets] == sorted(value for _, value in buckets)
        assert (scrape.value("cpn_worker_task_seconds_sum", task=task) or 0) > 0
    # Series of tasks that have not run yet exist from the start, at zero.
    assert scrape.value(TASKS, task="cpn.recompute_all", outcome="failed") == 0

    # The sum is over several processes: both pool children ran canaries, and the main process
    # counted the messages that never reached a child.
    metrics_dir = Path(worker.events("worker.metrics_serving")[0]["metrics_dir"])
    assert worker.process is not None
    main_pid = worker.process.pid
    children = count_by_process(metrics_dir, WEBHOOKS_CANARY, "succeeded")
    assert len(children) == 2, children
    assert main_pid not in children
    assert sum(children.values()) == CANARIES_SENT[WEBHOOKS_CANARY]
    assert count_by_process(metrics_dir, UNKNOWN_TASK, "rejected") == {main_pid: 1}
    assert count_by_process(metrics_dir, CPN_CANARY, "expired") == {main_pid: 1}
