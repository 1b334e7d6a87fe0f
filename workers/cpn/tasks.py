"""The CPN tasks (queue `cpn`) and their beat schedule.

Task bodies live in `workers.cpn.jobs`; this module adds what Celery needs: names, the retry
policy of every task (`workers.core.tasks`), the worker's one engine and Redis client. Every
task is idempotent: a recompute writes a row only when the figures changed, so a redelivered
message does no harm.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from cpn_sync.settings import Settings, get_settings
from cpn_sync.task_contract import (
    CPN_RECOMPUTE_ALL,
    CPN_RECOMPUTE_CHUNK,
    CPN_RECOMPUTE_USER,
    CPN_SCAN_DIRTY,
)
from db.cpn.recompute import CpnFiguresOutOfRangeError
from workers.core.celery_app import app
from workers.core.engine import get_engine
from workers.core.redis import worker_redis
from workers.core.tasks import task
from workers.cpn import jobs as cpn_jobs
from workers.cpn.requests import clear_request

# Figures outside the columns' range: bad data, logged without a traceback and not retried.
OUT_OF_RANGE = (CpnFiguresOutOfRangeError,)


def _options() -> cpn_jobs.CpnOptions:
    return cpn_jobs.CpnOptions.from_settings(get_settings())


def _raise_for(out_of_range: list[int]) -> None:
    if out_of_range:
        raise CpnFiguresOutOfRangeError(out_of_range)


@task(CPN_RECOMPUTE_USER, retry_transient=True, throws=OUT_OF_RANGE)
def recompute_user(user_id: int) -> None:
    clear_request(user_id, client=worker_redis())
    _raise_for(cpn_jobs.recompute_chunk(get_engine(), [user_id], _options()).out_of_range)


@task(CPN_RECOMPUTE_CHUNK, retry_transient=True, throws=OUT_OF_RANGE)
def recompute_chunk(user_ids: list[int]) -> None:
    _raise_for(cpn_jobs.recompute_chunk(get_engine(), user_ids, _options()).out_of_range)


@task(CPN_SCAN_DIRTY, retry_transient=True, throws=OUT_OF_RANGE)
def scan_dirty() -> None:
    _raise_for(cpn_jobs.scan_dirty(get_engine(), _options()).out_of_range)


@task(CPN_RECOMPUTE_ALL, retry_transient=True, throws=OUT_OF_RANGE)
def recompute_all() -> None:
    with app.producer_or_acquire() as producer:  # one broker connection for every chunk
        cpn_jobs.fan_out_all(
            get_engine(),
            _options(),
            lambda ids: recompute_chunk.apply_async((ids,), producer=producer),
        )


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat entries; each expires before the next one fires, so an outage leaves no backlog."""
    interval = settings.cpn_scan_interval_seconds
    return {
        CPN_SCAN_DIRTY: {
            "task": CPN_SCAN_DIRTY,
            "schedule": float(interval),
            "options": {"expires": interval},
        },
        CPN_RECOMPUTE_ALL: {
            "task": CPN_RECOMPUTE_ALL,
            "schedule": crontab(hour=settings.cpn_nightly_hour, minute=settings.cpn_nightly_minute),
            "options": {"expires": 3600},
        },
    }
