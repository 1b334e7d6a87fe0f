"""The errors about one stored event (they carry its id).

Messages name fields, ids and reasons, never the values of personal fields: they are stored in
`webhook_events.last_error` and appear in logs.
"""

from __future__ import annotations


class EventError(Exception):
    """Base of the errors about one stored event."""

    def __init__(self, event_id: int, reason: str) -> None:
        super().__init__(f"event {event_id}: {reason}")
        self.event_id = event_id
        self.reason = reason


class EventNotFoundError(EventError):
    """The task names an event id that is not in the inbox (not retried)."""

    def __init__(self, event_id: int) -> None:
        super().__init__(event_id, "not in webhook_events")


class PermanentEventError(EventError):
    """The event cannot be applied as it is: recorded as `failed` at once, replayable."""


class UserDeletedError(EventError):
    """The event's user was deleted (a tombstone exists) when its row was to be written: the
    event ends `ignored` and its payload is erased (`workers.inbox.dispatch`)."""

    def __init__(self, event_id: int, clerk_id: str) -> None:
        super().__init__(event_id, f"user {clerk_id} was deleted; not applied")
        self.clerk_id = clerk_id


class EmailHeldError(EventError):
    """Another stored user still holds the event's email address: an ordering problem, not a
    failure. The event is `waiting` for that holder, released when the holder changes or is
    deleted (`workers.inbox.dispatch`)."""

    def __init__(self, event_id: int, holder: str) -> None:
        super().__init__(event_id, f"waiting for user {holder} to give up the email address")
        self.holder = holder
