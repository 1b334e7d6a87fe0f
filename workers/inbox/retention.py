"""Payload retention (`maintenance.redact_payloads`, on beat): the stored payloads of applied
events (`processed`, `ignored`) older than WEBHOOK_RETENTION_DAYS are erased. A `failed` or
`waiting` event (or one still open) keeps its payload until it is replayed or its user is
deleted: erasing it would lose an event Clerk was told was stored. Under the schedule guard."""

from __future__ import annotations

import datetime as dt

from cpn_sync.settings import get_settings
from cpn_sync.task_contract import REDACT_PAYLOADS
from db.models import EventStatus, WebhookEvent
from workers.core.schedule import scheduled_job
from workers.core.unit_of_work import Publish, UnitOfWork
from workers.inbox import erasure

APPLIED_STATUSES = (EventStatus.PROCESSED, EventStatus.IGNORED)


@scheduled_job(REDACT_PAYLOADS, lambda settings: settings.payload_redaction_interval_seconds)
def redact_old_payloads(work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    """Erase the payloads of applied events older than WEBHOOK_RETENTION_DAYS."""
    days = get_settings().webhook_retention_days
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    redacted = erasure.redact_payloads(
        work.session,
        WebhookEvent.received_at < cutoff,
        WebhookEvent.status.in_(APPLIED_STATUSES),
    )
    return {"redacted": redacted}
