"""Payload retention (`maintenance.redact_payloads`, on beat): stored payloads older than
WEBHOOK_RETENTION_DAYS are erased, whatever the event's status. Under the schedule guard."""

from __future__ import annotations

import datetime as dt

from cpn_sync.settings import get_settings
from cpn_sync.task_contract import REDACT_PAYLOADS
from db.models import WebhookEvent
from workers.core.schedule import scheduled_job
from workers.core.unit_of_work import Publish, UnitOfWork
from workers.inbox import state


@scheduled_job(REDACT_PAYLOADS, lambda settings: settings.payload_redaction_interval_seconds)
def redact_old_payloads(work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    """Erase stored payloads older than WEBHOOK_RETENTION_DAYS, whatever their status."""
    days = get_settings().webhook_retention_days
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    return {"redacted": state.redact_payloads(work.session, WebhookEvent.received_at < cutoff)}
