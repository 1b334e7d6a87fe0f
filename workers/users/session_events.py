"""`session.*` events: one `user_sessions` row per Clerk session (DESIGN.md section 3).

Every event of a session is merged into its row so that any order of arrival gives the same
row: the earliest `created_at`, the latest `last_active_at` and `expires_at`, the first end
(an end is final: `is_active` never comes back), and device details from `latest_activity`
over those derived from an HTTP request. The `valid_session_times` CHECK holds by clamping:
`last_active_at` is raised to `created_at`, `ended_at` to `last_active_at`, `expires_at` to
`created_at`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Table, and_, bindparam, case, false, func, true
from sqlalchemy.dialects.postgresql import Insert, insert

from cpn_sync.clerk import ClerkEvent, ClerkSession, ClerkUser, HttpRequest, SessionActivity
from db.models import EventStatus, UserSession
from workers.inbox.context import PROCESSED, EventContext, EventOutcome
from workers.inbox.errors import UserDeletedError
from workers.users.user_agents import parse_user_agent
from workers.users.user_events import (
    find_user_id,
    is_deleted,
    release_waiting_events,
    upsert_user,
)

END_EVENT_TYPES = frozenset({"session.ended", "session.removed", "session.revoked"})
END_STATUSES = frozenset({"ended", "removed", "revoked", "expired", "abandoned", "replaced"})
# Statements are built on the table: the mapped class would take the ORM's slower paths.
SESSIONS = cast(Table, UserSession.__table__)
DEVICE_COLUMNS = ("ip_address", "device_type", "browser", "location_country", "location_city")


@dataclass(frozen=True)
class Device:
    ip_address: str | None = None
    user_agent: str | None = None
    device_type: str | None = None
    browser: str | None = None
    location_country: str | None = None
    location_city: str | None = None
    from_activity: bool = False  # Clerk's own record of the sign-in: preferred when present


def _ip_or_none(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def device_details(activity: SessionActivity | None, request: HttpRequest | None) -> Device:
    user_agent = request.user_agent if request is not None else None
    if activity is not None:
        country = activity.country.upper() if activity.country else None
        return Device(
            ip_address=_ip_or_none(activity.ip_address),
            user_agent=user_agent,
            device_type=_clip(activity.device_type, 50),
            browser=_clip(activity.browser_name, 50),
            location_country=country if country and len(country) == 2 else None,
            location_city=_clip(activity.city, 100),
            from_activity=True,
        )
    if request is None:
        return Device()
    parsed = parse_user_agent(user_agent) if user_agent else None
    return Device(
        ip_address=_ip_or_none(request.client_ip),
        user_agent=user_agent,
        device_type=parsed.device_type if parsed else None,
        browser=_clip(parsed.browser, 50) if parsed else None,
    )


def session_times(
    data: ClerkSession, ended: bool, fallback: dt.datetime
) -> dict[str, dt.datetime | None]:
    """The event's own times, clamped to satisfy `valid_session_times`."""
    created = data.created_at or data.last_active_at or fallback
    last_active = max(data.last_active_at or created, created)
    expires = max(data.expire_at, created) if data.expire_at else None
    ended_at = max(data.updated_at or fallback, last_active) if ended else None
    return {
        "created_at": created,
        "last_active_at": last_active,
        "expires_at": expires,
        "ended_at": ended_at,
    }


def _merged_times(excluded: Any) -> dict[str, ColumnElement[Any]]:
    """The same clamps as `session_times`, over the stored row and the incoming event."""
    created = func.least(SESSIONS.c.created_at, excluded.created_at)
    last_active = func.greatest(SESSIONS.c.last_active_at, excluded.last_active_at, created)
    expires = case(
        (and_(SESSIONS.c.expires_at.is_(None), excluded.expires_at.is_(None)), None),
        else_=func.greatest(SESSIONS.c.expires_at, excluded.expires_at, created),
    )
    ended_at = case(
        (and_(SESSIONS.c.ended_at.is_(None), excluded.ended_at.is_(None)), None),
        else_=func.greatest(func.least(SESSIONS.c.ended_at, excluded.ended_at), last_active),
    )
    is_active = case(
        (SESSIONS.c.ended_at.is_not(None) | excluded.ended_at.is_not(None), false()),
        (excluded.is_active, true()),
        else_=SESSIONS.c.is_active,
    )
    return {
        "created_at": created,
        "last_active_at": last_active,
        "expires_at": expires,
        "ended_at": ended_at,
        "is_active": is_active,
    }


SESSION_COLUMNS = (
    "user_id",
    "clerk_id",
    "session_id",
    "user_agent",
    "is_active",
    *DEVICE_COLUMNS,
    "created_at",
    "last_active_at",
    "expires_at",
    "ended_at",
)


def merge_on_conflict(statement: Insert, from_activity: bool) -> Insert:
    """`statement` (an insert into user_sessions) merging each row into the stored session:
    the one rule for one event (`UPSERT_SESSION`) and for a batch (`session_batches`)."""
    excluded = statement.excluded
    stored = SESSIONS.c
    device_update = {
        # Details from `latest_activity` replace those derived from a request; otherwise an
        # event only fills what is still unknown.
        column: (
            func.coalesce(excluded[column], stored[column])
            if from_activity
            else func.coalesce(stored[column], excluded[column])
        )
        for column in DEVICE_COLUMNS
    }
    device_update["user_agent"] = func.coalesce(stored.user_agent, excluded.user_agent)
    return statement.on_conflict_do_update(
        index_elements=[SESSIONS.c.session_id],
        set_={**device_update, **_merged_times(excluded)},
    )


# Built once per kind of device details (constructing costs more than running).
UPSERT_SESSION = {
    kind: merge_on_conflict(
        insert(SESSIONS).values({name: bindparam(name) for name in SESSION_COLUMNS}), kind
    )
    for kind in (True, False)
}


def session_row(envelope: ClerkEvent, data: ClerkSession) -> dict[str, Any]:
    """The `user_sessions` row the event proposes, without its `user_id`, and `from_activity`:
    which of `UPSERT_SESSION`'s merges it takes."""
    ended = envelope.type in END_EVENT_TYPES or data.status in END_STATUSES
    device = device_details(data.latest_activity, envelope.http_request)
    fallback = envelope.occurred_at or dt.datetime.now(dt.UTC)
    return {
        "clerk_id": data.user_id,
        "session_id": data.id,
        "user_agent": device.user_agent,
        "is_active": data.status == "active" and not ended,
        **{column: getattr(device, column) for column in DEVICE_COLUMNS},
        **session_times(data, ended, fallback),
        "from_activity": device.from_activity,
    }


def upsert_session(ctx: EventContext, user_id: int, row: dict[str, Any]) -> None:
    values = {name: row[name] for name in SESSION_COLUMNS if name != "user_id"}
    ctx.session.execute(UPSERT_SESSION[row["from_activity"]], {"user_id": user_id, **values})


def user_snapshot(data: ClerkSession) -> ClerkUser | None:
    """`data.user` as a user to create, or None when it cannot create one (then the event
    waits for the user's own event)."""
    try:
        return None if data.user is None else ClerkUser.model_validate(data.user)
    except ValidationError:
        return None


def handle_session(ctx: EventContext) -> EventOutcome:
    data = ClerkSession.model_validate(ctx.envelope.data)
    user_id = find_user_id(ctx.session, data.user_id)
    if user_id is None:
        if is_deleted(ctx.session, data.user_id):  # deleted after this event was read
            raise UserDeletedError(ctx.event_id, data.user_id)
        snapshot = user_snapshot(data)
        if snapshot is None or snapshot.id != data.user_id or snapshot.primary_email is None:
            return EventOutcome(
                EventStatus.WAITING,
                f"waiting for user {data.user_id}: not stored yet, and data.user "
                "has no email address to create it from",
            )
        user_id = upsert_user(ctx, snapshot).id
        release_waiting_events(ctx, data.user_id)
    upsert_session(ctx, user_id, session_row(ctx.envelope, data))
    return PROCESSED
