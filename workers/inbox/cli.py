"""`cpn-sync events`: list, inspect and replay the stored Clerk events (the inbox).

Payloads are personal data: `show` prints one only when asked with `--payload`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import click
import orjson
from kombu.exceptions import OperationalError
from sqlalchemy import Select, Text, cast, func, select, update

from cpn_sync.settings import get_settings
from cpn_sync.task_contract import PROCESS_EVENT
from db.models import WEBHOOK_EVENT_STATUSES, EventStatus, WebhookEvent
from workers.core.commands import command_engine, utc_text

_SUMMARY_COLUMNS = [column for column in WebhookEvent.__table__.columns if column.name != "payload"]
REPLAYABLE_STATUSES = tuple(
    s.value for s in (EventStatus.FAILED, EventStatus.WAITING, EventStatus.IGNORED)
)
DATETIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Times given without a zone are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@click.group()
def events() -> None:
    """List, show and replay stored Clerk events (the webhook_events inbox)."""


@events.command("list")
@click.option("--status", type=click.Choice(WEBHOOK_EVENT_STATUSES), help="Only this status.")
@click.option("--type", "event_type", help="Only this event type, e.g. user.created.")
@click.option("--since", type=click.DateTime(DATETIME_FORMATS), help="Received at or after (UTC).")
@click.option("--user", "clerk_user_id", metavar="USER_ID", help="Only events naming this user.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one object per event.")
def list_events(
    status: str | None,
    event_type: str | None,
    since: dt.datetime | None,
    clerk_user_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The newest events first: id, svix id, type, status, attempts, times, last error."""
    # The columns it prints, never the payload: listing decodes no JSON.
    query: Select[Any] = select(*_SUMMARY_COLUMNS).order_by(WebhookEvent.received_at.desc())
    if status:
        query = query.where(WebhookEvent.status == status)
    if clerk_user_id:
        query = query.where(WebhookEvent.clerk_user_id == clerk_user_id)
    if event_type:
        query = query.where(WebhookEvent.event_type == event_type)
    if since:
        query = query.where(WebhookEvent.received_at >= _utc(since))
    with command_engine() as engine, engine.connect() as connection:
        rows = connection.execute(query.limit(limit)).all()
    if as_json:
        click.echo(orjson.dumps([row._asdict() for row in rows], option=orjson.OPT_INDENT_2))
        return
    click.echo(
        f"{'id':>8}  {'svix_id':<32}  {'type':<18}  {'status':<10}  {'tries':>5}  "
        f"{'received (UTC)':<19}  {'processed (UTC)':<19}  last_error"
    )
    for row in rows:
        error = (row.last_error or "").replace("\n", " ")
        click.echo(
            f"{row.id:>8}  {row.svix_id:<32}  {row.event_type:<18}  {row.status:<10}  "
            f"{row.attempts:>5}  {utc_text(row.received_at):<19}  "
            f"{utc_text(row.processed_at):<19}  {error[:80]}"
        )
    click.echo(f"{len(rows)} event(s)")


@events.command()
@click.argument("svix_id")
@click.option("--payload", "with_payload", is_flag=True, help="Also print the stored payload.")
def show(svix_id: str, with_payload: bool) -> None:
    """One event by its svix id."""
    with command_engine() as engine, engine.connect() as connection:
        # The payload as PostgreSQL prints it, not decoded: whatever a user put into it prints.
        row = connection.execute(
            select(*_SUMMARY_COLUMNS, cast(WebhookEvent.payload, Text).label("payload")).where(
                WebhookEvent.svix_id == svix_id
            )
        ).one_or_none()
    if row is None:
        raise click.ClickException(f"no stored event with svix id {svix_id}")
    fields = [
        ("id", row.id),
        ("svix_id", row.svix_id),
        ("type", row.event_type),
        ("clerk_user_id", row.clerk_user_id or "-"),
        ("status", row.status),
        ("attempts", row.attempts),
        ("last_error", row.last_error or "-"),
        ("occurred_at", utc_text(row.occurred_at)),
        ("received_at", utc_text(row.received_at)),
        ("last_attempt_at", utc_text(row.last_attempt_at)),
        ("processed_at", utc_text(row.processed_at)),
        ("redacted_at", utc_text(row.redacted_at)),
    ]
    for name, value in fields:
        click.echo(f"{name + ':':<17}{value}")
    if with_payload:
        text = "(redacted)" if row.payload is None else _indented(row.payload)
        click.echo(f"payload:\n{text}")


@events.command()
@click.argument("svix_id", required=False)
@click.option("--status", type=click.Choice(REPLAYABLE_STATUSES), help="Replay every such event.")
@click.option("--type", "event_type", help="With --status: only this event type.")
@click.option("--dry-run", is_flag=True, help="Say which events would be replayed; change nothing.")
def replay(svix_id: str | None, status: str | None, event_type: str | None, dry_run: bool) -> None:
    """Reset events to `received` and enqueue them again: one by svix id, or all of a status.

    A replay starts afresh: attempts, last error and processed time are cleared. Events whose
    payload was redacted cannot be replayed.
    """
    if (svix_id is None) == (status is None):
        raise click.UsageError("give either SVIX_ID or --status")
    if event_type and status is None:
        raise click.UsageError("--type only goes with --status")
    conditions = (
        [WebhookEvent.svix_id == svix_id]
        if svix_id
        else [WebhookEvent.status == status]
        + ([WebhookEvent.event_type == event_type] if event_type else [])
    )
    if dry_run:
        _dry_run(conditions, svix_id)
        return
    get_settings().require_broker_url()  # before any row is reset
    with command_engine() as engine, engine.begin() as connection:
        matched = connection.scalar(
            select(func.count()).select_from(WebhookEvent).where(*conditions)
        )
        event_ids = connection.scalars(
            update(WebhookEvent)
            .where(*conditions, WebhookEvent.payload.is_not(None))
            .values(
                status=EventStatus.RECEIVED,
                attempts=0,
                last_error=None,
                processed_at=None,
                last_attempt_at=None,
            )
            .returning(WebhookEvent.id)
        ).all()
    if svix_id and not matched:
        raise click.ClickException(f"no stored event with svix id {svix_id}")
    redacted = (matched or 0) - len(event_ids)
    sent = _enqueue(event_ids)
    click.echo(f"replayed {len(event_ids)} event(s); {sent} enqueued")
    if sent < len(event_ids):
        click.echo(
            f"{len(event_ids) - sent} could not be enqueued now (broker unreachable); "
            "they stay `received` and the sweeper enqueues them",
            err=True,
        )
    if redacted:
        click.echo(f"{redacted} skipped: payload redacted, nothing left to apply", err=True)


def _dry_run(conditions: list[Any], svix_id: str | None) -> None:
    """What `replay` would take, read only: the svix ids, and those it would skip."""
    with command_engine() as engine, engine.connect() as connection:
        rows = connection.execute(
            select(WebhookEvent.svix_id, WebhookEvent.payload.is_(None).label("redacted"))
            .where(*conditions)
            .order_by(WebhookEvent.id)
        ).all()
    if svix_id and not rows:
        raise click.ClickException(f"no stored event with svix id {svix_id}")
    replayable = [row.svix_id for row in rows if not row.redacted]
    for replayed in replayable:
        click.echo(replayed)
    click.echo(f"would replay {len(replayable)} event(s); nothing changed (--dry-run)")
    if len(rows) > len(replayable):
        click.echo(f"{len(rows) - len(replayable)} would be skipped: payload redacted", err=True)


def _indented(stored: str) -> str:
    """Indented for reading where the decoder can; as stored otherwise (too deep for it)."""
    try:
        return json.dumps(orjson.loads(stored), indent=2)
    except (orjson.JSONDecodeError, RecursionError):
        return stored


def _enqueue(event_ids: Sequence[int]) -> int:
    """Send one task per event; stop at the first broker error (the sweeper takes the rest)."""
    # Here, not at the top: it loads the Celery app, which imports prometheus-client, and
    # `cpn-sync worker` must configure that before (cpn_sync/cli.py).
    from workers.core.unit_of_work import send_task

    sent = 0
    with click.progressbar(event_ids, label="enqueueing", file=None) as bar:
        for event_id in bar:
            try:
                send_task(PROCESS_EVENT, [event_id])
            except OperationalError:
                break
            sent += 1
    return sent
