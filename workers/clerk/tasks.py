"""The Clerk convergence tasks (queue `maintenance`): the recent sync every few minutes and the
nightly reconcile (both scheduled only when CLERK_SECRET_KEY is set), and the backfill that
`cpn-sync clerk backfill --enqueue` sends.

Each job claims its tick under the schedule guard, then lets the guard's transaction go: a walk
takes minutes and holds a lock of its own (`walks.one_run`), and a transaction left open that
long would hold back PostgreSQL's vacuum. A refused key or an API that does not answer ends
the job with one log line; its last success then ages, which the alert watches.

Every task keeps the scheduled jobs' time limits (a deploy's warm shutdown waits for the
longest, docker-compose.yml's `stop_grace_period`). A backfill longer than that stops at its
soft limit after its last committed page and sends itself again: the next task resumes from
the saved cursor.
"""

from __future__ import annotations

from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from celery.schedules import crontab

from cpn_sync.logs import get_logger
from cpn_sync.settings import Settings, SettingsError, get_settings
from cpn_sync.task_contract import CLERK_BACKFILL, CLERK_RECONCILE, CLERK_SYNC_RECENT
from workers.clerk.api import ClerkClient
from workers.clerk.backfill import backfill
from workers.clerk.config import require_config
from workers.clerk.errors import ClerkAPIError
from workers.clerk.recent import sync_recent
from workers.clerk.reconcile import TooManyMissingError, reconcile
from workers.clerk.walks import Report, WalkRunningError
from workers.core.schedule import JOB_SOFT_TIME_LIMIT, JOB_TIME_LIMIT, scheduled_job
from workers.core.tasks import task
from workers.core.unit_of_work import Publish, UnitOfWork, send_task

log = get_logger(__name__)

NIGHTLY_SECONDS = 24 * 3600
STOPPING_ERRORS = (ClerkAPIError, SettingsError, TooManyMissingError, WalkRunningError)


def has_key(settings: Settings) -> bool:
    return settings.clerk_secret_key is not None


def _run(job: str, walk: Callable[[ClerkClient], Report]) -> dict[str, int]:
    try:
        with ClerkClient(require_config(get_settings())) as client:
            return walk(client).summary()
    except STOPPING_ERRORS as error:
        log.error("clerk_sync.stopped", job=job, reason=str(error))
        return {"stopped": 1}


@scheduled_job(
    CLERK_SYNC_RECENT,
    lambda settings: settings.clerk_sync_interval_seconds,
    enabled=has_key,
)
def sync_recent_job(work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    work.session.commit()  # the tick is claimed; the walk holds its own lock
    return _run("sync_recent", sync_recent)


def _nightly(settings: Settings) -> dict[str, object]:
    at = crontab(hour=settings.clerk_reconcile_hour, minute=settings.clerk_reconcile_minute)
    return {"task": CLERK_RECONCILE, "schedule": at, "options": {"expires": 3600}}


@scheduled_job(
    CLERK_RECONCILE,
    lambda _settings: NIGHTLY_SECONDS,
    entry=_nightly,
    enabled=has_key,
)
def reconcile_job(work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    work.session.commit()  # the tick is claimed; the walk holds its own lock
    return _run("reconcile", reconcile)


@task(
    CLERK_BACKFILL,
    max_retries=0,
    soft_time_limit=JOB_SOFT_TIME_LIMIT,
    time_limit=JOB_TIME_LIMIT,
)
def backfill_task() -> dict[str, int]:
    """`cpn-sync clerk backfill --enqueue`; continues in a new task past the soft limit."""
    try:
        return _run("backfill", backfill)
    except SoftTimeLimitExceeded:
        log.info("clerk_sync.continues", job="backfill")
        send_task(CLERK_BACKFILL, [])
        return {"continued": 1}
