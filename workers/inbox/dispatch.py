"""Event type -> handler, as a plain mapping; and what happens before a handler runs."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from cpn_sync.clerk import ClerkEvent
from db.models import EventStatus
from workers.core.errors import describe_validation_error
from workers.core.unit_of_work import UnitOfWork
from workers.inbox import state
from workers.inbox.context import EventContext, EventOutcome
from workers.inbox.errors import PermanentEventError
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
    keeps no personal data it does not use); so is any event of a deleted user. A payload that
    does not validate fails with the fields named.
    """
    handler = HANDLERS.get(event.event_type)
    if handler is None:
        state.redact_event_payload(work.session, event.id)
        return EventOutcome(EventStatus.IGNORED, f"event type {event.event_type} is not handled")
    if event.user_deleted and event.clerk_user_id and event.event_type != "user.deleted":
        state.redact_user_payloads(work.session, event.clerk_user_id)
        return EventOutcome(
            EventStatus.IGNORED, f"user {event.clerk_user_id} was deleted; not applied"
        )
    if event.payload is None:
        raise PermanentEventError(event.id, "the payload was redacted before it was applied")
    reason = f"payload does not match a Clerk {event.event_type}: "
    try:
        envelope = ClerkEvent.model_validate(event.payload)
    except ValidationError as error:
        raise PermanentEventError(event.id, reason + describe_validation_error(error)) from error
    try:
        return handler(EventContext(work, event.id, envelope))
    except ValidationError as error:  # handlers validate `data`
        details = describe_validation_error(error, prefix="data")
        raise PermanentEventError(event.id, reason + details) from error
