"""Scheduled maintenance: the inbox sweeper, session expiry, payload retention.

Each job runs under `workers.core.schedule.run_scheduled` (advisory lock, once per tick).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import exists, func, or_, select, true, update

from cpn_sync.broker_queues import waiting_messages
from cpn_sync.settings import get_settings
from cpn_sync.task_contract import (
    EXPIRE_SESSIONS,
    PROCESS_EVENT,
    REDACT_PAYLOADS,
    SWEEP_INBOX,
    TASK_QUEUES,
)
from db.models import DeletedUser, User, UserSession, WebhookEvent
from workers.app import app
from workers.core.schedule import register_scheduled
from workers.core.unit_of_work import Publish, UnitOfWork
from workers.inbox import state


def queued_messages(queue: str) -> int:
    """Messages waiting in a broker queue (0 when the queue does not exist yet)."""
    with app.connection_for_read() as connection:
        return waiting_messages(connection, queue)


def stuck_events(work: UnitOfWork, limit: int) -> Sequence[int]:
    """`received`/`processing` rows whose message was probably lost. Rows locked by a running
    task are skipped: they are being applied right now."""
    settings = get_settings()
    return work.session.scalars(
        select(WebhookEvent.id)
        .where(
            state.stuck_condition(
                settings.sweep_received_after_seconds, settings.sweep_processing_after_seconds
            )
        )
        .order_by(WebhookEvent.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def releasable_events(work: UnitOfWork, limit: int) -> Sequence[int]:
    """`waiting` rows whose user now exists (or was deleted, which ends them as `ignored`)."""
    user_known = or_(
        exists().where(User.clerk_id == WebhookEvent.clerk_user_id),
        exists().where(DeletedUser.clerk_id == WebhookEvent.clerk_user_id),
    )
    return work.session.scalars(
        select(WebhookEvent.id)
        .where(WebhookEvent.status == "waiting", user_known)
        .order_by(WebhookEvent.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def sweep_inbox(work: UnitOfWork, publish: Publish) -> dict[str, int]:
    """Re-enqueue events whose message was lost (broker outage, killed worker) or whose user
    has arrived. Tops the queue up to `sweep_batch_size` messages: rows of a backlog that is
    still in the queue are not sent a second time.

    A lost message may have killed its worker, so it goes out as `[event_id, true]`
    (`recovered`): the task then counts the attempt before trying.
    """
    queued = queued_messages(TASK_QUEUES[PROCESS_EVENT])
    budget = get_settings().sweep_batch_size - queued
    if budget <= 0:
        return {"requeued": 0, "released": 0, "queued": queued}
    stuck = stuck_events(work, budget)
    released = releasable_events(work, budget - len(stuck))
    for event_id in stuck:
        publish(PROCESS_EVENT, [event_id, True])
    for event_id in released:
        publish(PROCESS_EVENT, [event_id])
    return {"requeued": len(stuck), "released": len(released), "queued": queued}


def expire_sessions(work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    """Sessions past `expires_at` become inactive and ended (at their expiry, clamped)."""
    result = work.session.execute(
        update(UserSession)
        .where(UserSession.is_active == true(), UserSession.expires_at <= func.now())
        .values(
            is_active=False,
            ended_at=func.coalesce(
                UserSession.ended_at,
                func.greatest(UserSession.expires_at, UserSession.last_active_at),
            ),
        )
        .returning(UserSession.id)
    )
    return {"expired": len(result.all())}


def redact_old_payloads(work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    """Erase stored payloads older than WEBHOOK_RETENTION_DAYS, whatever their status."""
    days = get_settings().webhook_retention_days
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    return {"redacted": state.redact_payloads(work.session, WebhookEvent.received_at < cutoff)}


SCHEDULED_JOBS = {
    SWEEP_INBOX: sweep_inbox,
    EXPIRE_SESSIONS: expire_sessions,
    REDACT_PAYLOADS: redact_old_payloads,
}

for _task_name, _job in SCHEDULED_JOBS.items():
    register_scheduled(app, _task_name, _job)
