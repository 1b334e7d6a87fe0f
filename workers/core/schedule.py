"""The guard every scheduled job runs under, and the beat entries of the guarded jobs (the
composition root, `workers.app`, adds the other features' entries).

Two beat processes would each send every tick. The guard makes that harmless: a job runs in
one transaction that holds its advisory lock (a second copy running at the same moment skips),
and a copy that arrives after the tick already ran (its `scheduled_job_runs.last_started_at`
is less than 90 % of the interval old) skips as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cpn_sync.logs import get_logger
from cpn_sync.settings import Settings, get_settings
from db.models import ScheduledJobRun
from workers.core.locks import try_lock_job
from workers.core.tasks import task
from workers.core.unit_of_work import Publish, UnitOfWork, send_task, unit_of_work

log = get_logger(__name__)

# A second run of a job within this share of its interval belongs to the same tick.
SAME_TICK_SHARE = 0.9
# Scheduled jobs are not retried (the next tick is the retry) and may take a few minutes.
JOB_SOFT_TIME_LIMIT = 240
JOB_TIME_LIMIT = 300

Job = Callable[[UnitOfWork, Publish], dict[str, int]]


Interval = Callable[[Settings], float]
BeatEntry = Callable[[Settings], dict[str, Any]]
Enabled = Callable[[Settings], bool]
# Task name -> its beat entry, from the settings: filled by `scheduled_job` as features load.
BEAT_ENTRIES: dict[str, BeatEntry] = {}
# Task name -> whether beat sends it with these settings (absent: always).
BEAT_CONDITIONS: dict[str, Enabled] = {}


def every(task: str, interval: float) -> dict[str, Any]:
    """A beat entry whose tick, not taken before the next one, expires: a worker that was
    down does not find a pile of identical messages when it returns."""
    return {"task": task, "schedule": interval, "options": {"expires": interval}}


def guarded_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat entries of every job registered with `scheduled_job` that these settings enable."""
    return {
        task: entry(settings)
        for task, entry in BEAT_ENTRIES.items()
        if BEAT_CONDITIONS.get(task, _always)(settings)
    }


def _always(_settings: Settings) -> bool:
    return True


def claim_tick(session: Session, job_name: str, interval_seconds: float) -> bool:
    """Record that `job_name` starts now, unless it already started within this tick."""
    min_gap: ColumnElement[Any] = literal_column("interval '1 second'") * (
        interval_seconds * SAME_TICK_SHARE
    )
    insert_run = insert(ScheduledJobRun).values(job_name=job_name, last_started_at=func.now())
    upsert_run = insert_run.on_conflict_do_update(
        index_elements=[ScheduledJobRun.job_name],
        set_={"last_started_at": func.now()},
        where=ScheduledJobRun.last_started_at <= func.now() - min_gap,
    ).returning(ScheduledJobRun.job_name)
    return session.execute(upsert_run).first() is not None


def run_scheduled(
    job_name: str, interval_seconds: float, job: Job, publish: Publish | None = None
) -> dict[str, int] | None:
    """Run `job` once for this tick; answer its counts, or None when this copy skipped."""
    with unit_of_work() as work:
        if not try_lock_job(work.session, job_name):
            log.info("schedule.skipped", job=job_name, reason="running elsewhere")
            return None
        if not claim_tick(work.session, job_name, interval_seconds):
            log.info("schedule.skipped", job=job_name, reason="tick already ran")
            return None
        counts = job(work, publish or send_task)
    log.info("schedule.ran", job=job_name, **counts)
    return counts


def scheduled_job(
    task_name: str,
    interval: Interval,
    *,
    entry: BeatEntry | None = None,
    enabled: Enabled | None = None,
) -> Callable[[Job], Job]:
    """Make the decorated job the task `task_name`, run once per tick under the guard above;
    beat sends it every `interval(settings)` seconds, or as `entry(settings)` says (a crontab;
    `interval` is then the tick's length for the guard), and only when `enabled(settings)`.
    The job itself is returned unchanged (tests call it)."""

    def register(job: Job) -> Job:
        def run_job() -> None:
            run_scheduled(task_name, interval(get_settings()), job)

        run_job.__name__ = run_job.__qualname__ = task_name.replace(".", "_")
        task(
            task_name, max_retries=0, soft_time_limit=JOB_SOFT_TIME_LIMIT, time_limit=JOB_TIME_LIMIT
        )(run_job)
        BEAT_ENTRIES[task_name] = entry or (lambda settings: every(task_name, interval(settings)))
        if enabled is not None:
            BEAT_CONDITIONS[task_name] = enabled
        return job

    return register
