"""The canary tasks: one per queue, proof that something consumes it.

Beat sends `<queue>.canary` every CANARY_INTERVAL_SECONDS (expiring after one interval); the
worker that runs it records the time in Redis (`cpn_sync.canaries`), and the web's `/metrics`
reports how long ago that was. The task does nothing else, so its age measures the queue alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cpn_sync.canaries import record_consumed
from cpn_sync.logs import get_logger
from cpn_sync.settings import Settings
from cpn_sync.task_contract import CANARIES
from workers.core.redis import worker_redis
from workers.core.schedule import every
from workers.core.tasks import task

log = get_logger(__name__)


def _canary(queue: str) -> Callable[[], None]:
    def canary() -> None:
        consumed_at = record_consumed(worker_redis(), queue)
        log.debug("canary.consumed", queue=queue, at=consumed_at)

    canary.__name__ = canary.__qualname__ = f"{queue}_canary"
    return canary


for _queue, _task_name in CANARIES.items():
    # Not retried: the next tick is the retry, and a failing canary is the signal.
    task(_task_name, max_retries=0, soft_time_limit=10, time_limit=20)(_canary(_queue))


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """A canary to each queue. They skip the once-per-tick guard: a second beat's copy only
    records the same fact again."""
    interval = settings.canary_interval_seconds
    return {task: every(task, interval) for task in CANARIES.values()}
