"""What a handler receives (the event and its transaction) and what it answers (an outcome)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from cpn_sync.clerk import ClerkEvent
from db.models import EventStatus
from workers.core.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class EventOutcome:
    """How an event ended. `note` says why for `ignored` and `waiting` (kept in last_error)."""

    status: EventStatus  # processed, ignored or waiting: failures are raised
    note: str | None = None
    waiting_for: str | None = None  # `waiting` for another user (who holds the email address)


PROCESSED = EventOutcome(EventStatus.PROCESSED)


@dataclass
class EventContext:
    """One stored event being applied inside the task's transaction."""

    work: UnitOfWork
    event_id: int
    envelope: ClerkEvent
    # `data.unsafe_metadata.onboarding` of a user event as stored JSON text, not decoded: the
    # envelope holds no metadata, and the onboarding feature decodes it where a failure fails
    # only the migration (DESIGN.md section 3).
    onboarding: str | None = None
    # Values in unsafe_metadata that the web replaced to store the event (`cpn_sync.unstorable`).
    unstorable: list[dict[str, str]] = field(default_factory=list)

    @property
    def session(self) -> Session:
        return self.work.session

    def after_commit(self, task_name: str, args: list[Any]) -> None:
        self.work.after_commit(task_name, args)
