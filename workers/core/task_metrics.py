"""Prometheus metrics of the workers: tasks by name and outcome, and how long they ran.

The pool's children run the tasks, so every child writes its counts to prometheus-client's
per-process files (`cpn-sync worker` points PROMETHEUS_MULTIPROC_DIR at a fresh private
directory before anything imports prometheus-client), and the main process serves the sum of
all of them on WORKER_METRICS_PORT. Outcomes are Celery's signals: `succeeded`, `failed`,
`retried` (in the child that ran the task), `revoked`, `expired` and `rejected` (in the main
process, for messages that never reached a child).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_rejected,
    task_retry,
    task_revoked,
    task_success,
    task_unknown,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from cpn_sync.logs import get_logger
from cpn_sync.metrics_dir import MULTIPROC_ENV
from cpn_sync.settings import get_settings
from cpn_sync.task_contract import TASK_QUEUES

log = get_logger(__name__)

OUTCOMES = ("succeeded", "failed", "retried", "revoked", "expired", "rejected")

TASKS = Counter(
    "cpn_worker_tasks", "Task runs and messages by task name and outcome.", ["task", "outcome"]
)
TASK_SECONDS = Histogram(
    "cpn_worker_task_seconds",
    "Time a task ran in a pool process, whatever its outcome.",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

_started_at: dict[str, float] = {}  # task id -> perf_counter(), in the child running it
_server: list[Any] = []  # the main process's metrics server, while it runs


def _count(task_name: str, outcome: str) -> None:
    TASKS.labels(task=task_name, outcome=outcome).inc()


@task_prerun.connect
def _started(task_id: str, **_: Any) -> None:
    _started_at[task_id] = time.perf_counter()


@task_postrun.connect
def _finished(task_id: str, task: Any, **_: Any) -> None:
    started = _started_at.pop(task_id, None)
    if started is not None:
        TASK_SECONDS.labels(task=task.name).observe(time.perf_counter() - started)


@task_success.connect
def _succeeded(sender: Any, **_: Any) -> None:
    _count(sender.name, "succeeded")


@task_failure.connect
def _failed(sender: Any, **_: Any) -> None:
    _count(sender.name, "failed")


@task_retry.connect
def _retried(sender: Any, **_: Any) -> None:
    _count(sender.name, "retried")


@task_revoked.connect
def _revoked(sender: Any, expired: bool = False, **_: Any) -> None:
    _count(sender.name, "expired" if expired else "revoked")


@task_rejected.connect
def _rejected(message: Any, **_: Any) -> None:
    """A message the worker could not read as a task."""
    _count(str((message.headers or {}).get("task", "unknown")), "rejected")


@task_unknown.connect
def _unknown(name: str, **_: Any) -> None:
    """A message naming a task this worker does not have."""
    _count(name, "rejected")


@worker_init.connect
def _every_series_from_zero(**_: Any) -> None:
    """Series exist before their first increment, so `increase()` sees that one too."""
    for task_name in TASK_QUEUES:
        TASK_SECONDS.labels(task=task_name)
        for outcome in OUTCOMES:
            TASKS.labels(task=task_name, outcome=outcome)


@worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    """Serve the sum over the pool on WORKER_METRICS_PORT (main process; 0 turns it off)."""
    port = get_settings().worker_metrics_port
    if not port or _server:
        return
    if not os.environ.get(MULTIPROC_ENV):
        log.warning("worker.metrics_disabled", reason="not started by `cpn-sync worker`")
        return
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        server, _thread = start_http_server(port, registry=registry)
    except OSError as error:  # the worker still works; only the scrape is missing
        log.error("worker.metrics_unavailable", port=port, error=str(error))
        return
    _server.append(server)
    log.info("worker.metrics_serving", port=port, metrics_dir=os.environ[MULTIPROC_ENV])


@worker_shutdown.connect
def _stop_serving(**_: Any) -> None:
    while _server:
        _server.pop().shutdown()


@worker_process_shutdown.connect
def _child_exits(**_: Any) -> None:
    """A pool child's live gauges leave with it (its counts stay in the sum)."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
