"""The CPN tasks (queue `cpn`) and their beat schedule.

Task bodies live in `workers.cpn.jobs`; this module adds what Celery needs: names, retries and
the per-process database engine and Redis client (created lazily in each pool process, so no
connection crosses a fork). Every task is idempotent: a recompute writes a row only when the
figures changed, so a redelivered message does no harm.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis
from celery.schedules import crontab
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from cpn_sync.settings import Settings, get_settings
from cpn_sync.task_contract import (
    CPN_RECOMPUTE_ALL,
    CPN_RECOMPUTE_CHUNK,
    CPN_RECOMPUTE_USER,
    CPN_SCAN_DIRTY,
)
from db.cpn.recompute import CpnFiguresOutOfRangeError
from db.engine import make_engine
from workers.core.celery_app import app
from workers.cpn import jobs as cpn_jobs
from workers.cpn.requests import clear_request, redis_client, request_user_recompute

# Transient: the database or Redis unreachable, a deadlock or serialization failure (psycopg
# reports those as OperationalError). Anything else is a bug or bad data and is not retried.
RETRY_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OperationalError, redis.ConnectionError, redis.TimeoutError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 8,
    "throws": (CpnFiguresOutOfRangeError,),
}


@lru_cache(maxsize=1)
def _engine() -> Engine:
    settings = get_settings()
    return make_engine(settings.require_database_url(), pool_size=2, max_overflow=2)


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis_client(get_settings())


def _options() -> cpn_jobs.CpnOptions:
    return cpn_jobs.CpnOptions.from_settings(get_settings())


def request_recompute(user_id: int) -> bool:
    """For other tasks (after a migration or a rollback), once their transaction committed: a
    coalesced `cpn.recompute_user`. Answers whether this call queued one."""
    return request_user_recompute(
        user_id,
        client=_redis(),
        celery_app=app,
        window_seconds=get_settings().cpn_coalesce_seconds,
    )


def _raise_for(out_of_range: list[int]) -> None:
    if out_of_range:
        raise CpnFiguresOutOfRangeError(out_of_range)


@app.task(name=CPN_RECOMPUTE_USER, **RETRY_OPTIONS)
def recompute_user(user_id: int) -> None:
    clear_request(user_id, client=_redis())
    _raise_for(cpn_jobs.recompute_chunk(_engine(), [user_id], _options()).out_of_range)


@app.task(name=CPN_RECOMPUTE_CHUNK, **RETRY_OPTIONS)
def recompute_chunk(user_ids: list[int]) -> None:
    _raise_for(cpn_jobs.recompute_chunk(_engine(), user_ids, _options()).out_of_range)


@app.task(name=CPN_SCAN_DIRTY, **RETRY_OPTIONS)
def scan_dirty() -> None:
    _raise_for(cpn_jobs.scan_dirty(_engine(), _options()).out_of_range)


@app.task(name=CPN_RECOMPUTE_ALL, **RETRY_OPTIONS)
def recompute_all() -> None:
    with app.producer_or_acquire() as producer:  # one broker connection for every chunk
        cpn_jobs.fan_out_all(
            _engine(),
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
