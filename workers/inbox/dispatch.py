"""Event type -> handler, as a plain mapping; and what happens before a handler runs."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from pydantic import ValidationError
from sqlalchemy import or_

from cpn_sync import unstorable
from cpn_sync.clerk import ClerkEvent
from db.models import EventStatus
from workers.core.errors import describe_json_error, describe_validation_error
from workers.core.unit_of_work import UnitOfWork
from workers.inbox import erasure, state
from workers.inbox.context import EventContext, EventOutcome
from workers.inbox.errors import EmailHeldError, PermanentEventError, UserDeletedError
from workers.users.session_events import handle_session
from workers.users.user_events import handle_user_deleted, handle_user_upsert

Handler = Callable[[EventContext], EventOutcome]

HANDLERS: dict[str, Handler] = {
    "user.created": handle_user_upsert,
    "user.updated": handle_user_upsert,
    "user.deleted": handle_user_deleted,
    "session.created": handle_session,
    "session.pending": handle_session,
    "session.ended": handle_session,
    "session.removed": handle_session,
    "session.revoked": handle_session,
}


def dispatch(work: UnitOfWork, event: state.LockedEvent) -> EventOutcome:
    """Choose and run the handler; answer the outcome or raise PermanentEventError.

    Types without a handler are `ignored` and their payload is erased at once (the service
    keeps no personal data it does not use); so is any event of a deleted user. The payload
    (without its metadata, see `state.PAYLOAD_TEXT`) is decoded here, in the event's own
    attempt, so a text that cannot be decoded fails this event alone. A payload that does not
    validate fails with the fields named.
    """
    handler = HANDLERS.get(event.event_type)
    if handler is None:
        erasure.redact_event_payload(work.session, event.id)
        return EventOutcome(EventStatus.IGNORED, f"event type {event.event_type} is not handled")
    if event.user_deleted and event.clerk_user_id and event.event_type != "user.deleted":
        return _ignore_deleted_user(work, event, event.clerk_user_id)
    envelope, problems = read_envelope(event)
    try:
        return handler(
            EventContext(work, event.id, envelope, event.onboarding, unstorable=problems)
        )
    except ValidationError as error:  # handlers validate `data`
        details = describe_validation_error(error, prefix="data")
        raise PermanentEventError(event.id, _not_a(event.event_type) + details) from error
    except UserDeletedError as error:
        # The tombstone was committed after the event was read: the write refused it.
        return _ignore_deleted_user(work, event, error.clerk_id)
    except EmailHeldError as error:
        return EventOutcome(EventStatus.WAITING, error.reason, waiting_for=error.holder)


def read_envelope(event: state.LockedEvent) -> tuple[ClerkEvent, list[dict[str, str]]]:
    """Decode the stored payload text and validate its envelope; answer it with the values the
    web could not store as they were. Raises PermanentEventError, naming what is wrong."""
    try:
        document = None if event.payload is None else orjson.loads(event.payload)
    except orjson.JSONDecodeError as error:
        reason = f"payload cannot be read: {describe_json_error(error)}"
        raise PermanentEventError(event.id, reason) from None
    if document is None:
        raise PermanentEventError(event.id, "the payload was redacted before it was applied")
    problems = unstorable.problems_of(document)
    if problems:
        check_unstorable(event.id, problems)
    try:
        return ClerkEvent.model_validate(document), problems
    except ValidationError as error:
        reason = _not_a(event.event_type) + describe_validation_error(error)
        raise PermanentEventError(event.id, reason) from error


def _not_a(event_type: str) -> str:
    return f"payload does not match a Clerk {event_type}: "


def _ignore_deleted_user(work: UnitOfWork, event: state.LockedEvent, clerk_id: str) -> EventOutcome:
    """An event of a deleted user: `ignored`, and the user's stored payloads erased (this
    event's too, also when its row does not name the user yet)."""
    events = state.EVENTS.c
    erasure.redact_payloads(
        work.session, or_(events.clerk_user_id == clerk_id, events.id == event.id)
    )
    return EventOutcome(EventStatus.IGNORED, f"user {clerk_id} was deleted; not applied")


def check_unstorable(event_id: int, problems: list[dict[str, str]]) -> None:
    """Values the web could not store as they were (`cpn_sync.unstorable`): inside
    `unsafe_metadata` the event is applied without them (only the onboarding migration fails);
    anywhere else the event fails, naming each."""
    elsewhere = unstorable.outside_unsafe_metadata(problems)
    if elsewhere:
        raise PermanentEventError(event_id, "payload: " + unstorable.describe(elsewhere))
