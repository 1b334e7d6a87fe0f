"""The beat schedule (in code, documented in the README) and the guard every scheduled job
runs under.

Two beat processes would each send every tick. The guard makes that harmless: a job runs in
one transaction that holds its advisory lock (a second copy running at the same moment skips),
and a copy that arrives after the tick already ran (its `scheduled_job_runs.last_started_at`
is less than 90 % of the interval old) skips as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.schedules import crontab
from sqlalchemy import ColumnElement, func, literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from cpn_sync.logs import get_logger
from cpn_sync.settings import Settings, get_settings
from cpn_sync.task_contract import (
    CANARIES,
    CPN_RECOMPUTE_ALL,
    CPN_SCAN_DIRTY,
    EXPIRE_SESSIONS,
    REDACT_PAYLOADS,
    SWEEP_INBOX,
)
from db.models import ScheduledJobRun
from workers.core.locks import try_lock_job
from workers.core.unit_of_work import Publish, UnitOfWork, send_task, unit_of_work

log = get_logger(__name__)

# A second run of a job within this share of its interval belongs to the same tick.
SAME_TICK_SHARE = 0.9
# Scheduled jobs are not retried (the next tick is the retry) and may take a few minutes.
JOB_SOFT_TIME_LIMIT = 240
JOB_TIME_LIMIT = 300

Job = Callable[[UnitOfWork, Publish], dict[str, int]]


def job_intervals(settings: Settings) -> dict[str, float]:
    """Task name -> seconds between runs."""
    return {
        SWEEP_INBOX: settings.sweep_interval_seconds,
        EXPIRE_SESSIONS: settings.session_expiry_interval_seconds,
        REDACT_PAYLOADS: settings.payload_redaction_interval_seconds,
    }


def every(task: str, interval: float) -> dict[str, Any]:
    """A beat entry whose tick, not taken before the next one, expires: a worker that was
    down does not find a pile of identical messages when it returns."""
    return {"task": task, "schedule": interval, "options": {"expires": interval}}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's `beat_schedule`."""
    return (
        {task: every(task, interval) for task, interval in job_intervals(settings).items()}
        | cpn_beat_schedule(settings)
        | canary_beat_schedule(settings)
    )


def canary_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """A canary to each queue. They skip the once-per-tick guard: a second beat's copy only
    records the same fact again."""
    interval = settings.canary_interval_seconds
    return {task: every(task, interval) for task in CANARIES.values()}


def cpn_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
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


def register_scheduled(app: Celery, task_name: str, job: Job) -> None:
    """Make `job` the task `task_name`, run once per tick under the guard above."""

    def run_job() -> None:
        run_scheduled(task_name, job_intervals(get_settings())[task_name], job)

    run_job.__name__ = run_job.__qualname__ = task_name.replace(".", "_")
    app.task(
        name=task_name,
        max_retries=0,
        acks_late=True,
        soft_time_limit=JOB_SOFT_TIME_LIMIT,
        time_limit=JOB_TIME_LIMIT,
    )(run_job)
