"""The CPN tasks (queue `cpn`): a user's recompute, a chunk's, and the two scheduled jobs.

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
    CPN_REVOKE_SHARE,
    CPN_SCAN_DIRTY,
)
from db.cpn.recompute import CpnFiguresOutOfRangeError
from workers.core.celery_app import app
from workers.core.engine import get_engine
from workers.core.redis import worker_redis
from workers.core.schedule import scheduled_job
from workers.core.tasks import task
from workers.core.unit_of_work import Publish, UnitOfWork
from workers.cpn import jobs as cpn_jobs
from workers.cpn.requests import clear_request

NIGHTLY_SECONDS = 24 * 3600  # the full recompute's tick, for the schedule guard

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


@task(CPN_REVOKE_SHARE, retry_transient=True)
def revoke_share(user_id: int) -> None:
    """Revoke a user's share links (a new token for each result; the old links answer 404)."""
    cpn_jobs.revoke_share_links(get_engine(), user_id, get_settings().public_base_url)


def _counts(outcome: cpn_jobs.JobOutcome) -> dict[str, int]:
    return {"chunks": outcome.chunks, "users": outcome.users, "written": outcome.written}


@scheduled_job(CPN_SCAN_DIRTY, lambda settings: settings.cpn_scan_interval_seconds)
def scan_dirty(_work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    outcome = cpn_jobs.scan_dirty(get_engine(), _options())
    _raise_for(outcome.out_of_range)
    return _counts(outcome)


def _nightly(settings: Settings) -> dict[str, Any]:
    at = crontab(hour=settings.cpn_nightly_hour, minute=settings.cpn_nightly_minute)
    return {"task": CPN_RECOMPUTE_ALL, "schedule": at, "options": {"expires": 3600}}


@scheduled_job(CPN_RECOMPUTE_ALL, lambda _settings: NIGHTLY_SECONDS, entry=_nightly)
def recompute_all(_work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    with app.producer_or_acquire() as producer:  # one broker connection for every chunk
        outcome = cpn_jobs.fan_out_all(
            get_engine(),
            _options(),
            lambda ids: recompute_chunk.apply_async((ids,), producer=producer),
        )
    return _counts(outcome)
