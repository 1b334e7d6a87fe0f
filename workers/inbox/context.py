"""What a handler receives (the event and its transaction) and what it answers (an outcome)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session

from workers.core.unit_of_work import UnitOfWork
from workers.users.clerk_payloads import ClerkEvent

OutcomeStatus = Literal["processed", "ignored", "waiting"]


@dataclass(frozen=True)
class Outcome:
    """How an event ended. `note` says why for `ignored` and `waiting` (kept in last_error)."""

    status: OutcomeStatus
    note: str | None = None


PROCESSED = Outcome("processed")


@dataclass
class EventContext:
    """One stored event being applied inside the task's transaction."""

    work: UnitOfWork
    event_id: int
    envelope: ClerkEvent

    @property
    def session(self) -> Session:
        return self.work.session

    def after_commit(self, task_name: str, args: list[Any]) -> None:
        self.work.after_commit(task_name, args)
