"""The inbox sweeper (`maintenance.sweep_inbox`, on beat): events whose message was lost, and
`waiting` events whose user has arrived (or whose email address was given up), are sent again.

It runs under the schedule guard (`workers.core.schedule`: advisory lock, once per tick).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, exists, or_, select, text

from cpn_sync.broker_queues import waiting_messages
from cpn_sync.settings import Settings, get_settings
from cpn_sync.task_contract import PROCESS_EVENT, SWEEP_INBOX, TASK_QUEUES
from db.models import DeletedUser, EventStatus, User, WebhookEvent
from workers.core.celery_app import HARD_TIME_LIMIT, app
from workers.core.schedule import scheduled_job
from workers.core.unit_of_work import Publish, UnitOfWork
from workers.inbox import state

# Slack past the longest legitimate wait: the retry message's trip through the queue and one
# sweep interval's worth of scheduling.
PROCESSING_MARGIN_SECONDS = 60


def default_processing_after(backoff_max_seconds: int, hard_time_limit_seconds: int) -> int:
    """How long a `processing` row may go untouched before its message counts as lost: an
    attempt runs at most the hard time limit, then its retry waits at most the backoff cap."""
    return backoff_max_seconds + hard_time_limit_seconds + PROCESSING_MARGIN_SECONDS


def processing_after_seconds(settings: Settings) -> int:
    """SWEEP_PROCESSING_AFTER_SECONDS when set, else the default derived from the settings."""
    if settings.sweep_processing_after_seconds is not None:
        return settings.sweep_processing_after_seconds
    return default_processing_after(settings.event_retry_backoff_max_seconds, HARD_TIME_LIMIT)


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
                settings.sweep_received_after_seconds, processing_after_seconds(settings)
            )
        )
        .order_by(WebhookEvent.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


# The holder an event waits for no longer holds the address the event wants (the user's primary
# address by id, else the first, as `ClerkUser.primary_email` chooses it): the holder changed
# its address or is gone.
_HOLDER_LET_GO = text(
    """NOT EXISTS (
      SELECT 1 FROM users AS holder
      WHERE holder.clerk_id = webhook_events.waiting_for
        AND holder.email = (
          SELECT address ->> 'email_address'
          FROM (
            SELECT CASE WHEN left(webhook_events.event_type, 8) = 'session.'
                        THEN webhook_events.payload #> '{data,user}'
                        ELSE webhook_events.payload -> 'data' END AS data
          ) AS snapshot
          CROSS JOIN LATERAL jsonb_array_elements(
            CASE WHEN jsonb_typeof(snapshot.data -> 'email_addresses') = 'array'
                 THEN snapshot.data -> 'email_addresses' ELSE '[]'::jsonb END
          ) WITH ORDINALITY AS addresses(address, n)
          ORDER BY (address ->> 'id') IS NOT DISTINCT FROM
                   (snapshot.data ->> 'primary_email_address_id') DESC, n
          LIMIT 1))"""
)


def releasable_events(work: UnitOfWork, limit: int) -> Sequence[int]:
    """`waiting` rows whose user now exists (or was deleted, which ends them as `ignored`),
    and rows waiting for another user to give up an email address that it no longer holds."""
    user_known = or_(
        exists().where(User.clerk_id == WebhookEvent.clerk_user_id),
        exists().where(DeletedUser.clerk_id == WebhookEvent.clerk_user_id),
    )
    released = or_(
        and_(WebhookEvent.waiting_for.is_(None), user_known),
        and_(WebhookEvent.waiting_for.is_not(None), _HOLDER_LET_GO),
    )
    return work.session.scalars(
        select(WebhookEvent.id)
        .where(WebhookEvent.status == EventStatus.WAITING, released)
        .order_by(WebhookEvent.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


@scheduled_job(SWEEP_INBOX, lambda settings: settings.sweep_interval_seconds)
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
