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
