"""The one path that applies a stored event: dispatch it to its handler and record its outcome,
in the caller's transaction. A single message (`tasks.apply_event`), a batch from the web
(`tasks.apply_events`) and a backlog taken along (`backlog.apply_backlog`) are uses of it: they
differ in which rows and user locks they take, not in how an event is applied; and each logs
`event.applied` with `log_applied` once its transaction has committed.
"""

from __future__ import annotations

from collections.abc import Iterable

from cpn_sync.db_errors import is_database_error
from cpn_sync.logs import get_logger
from workers.core.errors import describe_database_error, is_transient
from workers.core.unit_of_work import UnitOfWork
from workers.inbox import state
from workers.inbox.context import EventOutcome
from workers.inbox.dispatch import dispatch
from workers.inbox.errors import PermanentEventError

log = get_logger(__name__)

Applied = list[tuple[state.LockedEvent, EventOutcome]]


def apply(
    work: UnitOfWork, event: state.LockedEvent, *, count_attempt: bool = True
) -> EventOutcome:
    """Apply one locked event and record its outcome; what the handler raises propagates."""
    outcome = dispatch(work, event)
    state.record_outcome(work.session, event, outcome, count_attempt=count_attempt)
    return outcome


def apply_in_savepoint(work: UnitOfWork, event: state.LockedEvent) -> EventOutcome | None:
    """Apply one of several events of a transaction in a savepoint: its outcome, or None when
    it failed (recorded `failed` with the reason; the others' work stands). Transient errors
    propagate: the whole transaction is tried again."""
    try:
        with work.savepoint():
            outcome = apply(work, event)
    except PermanentEventError as error:
        reason = error.reason
    except Exception as error:
        if is_transient(error):
            raise
        reason = describe_unexpected(event.id, error)
    else:
        return outcome
    state.record_failure(work.session, event.id, reason, count_attempt=True)
    log.warning("event.failed", event_id=event.id, reason=reason)
    return None


def describe_unexpected(event_id: int, error: Exception) -> str:
    """Log an error nobody foresaw (a bug, or a database rejection) and answer the reason to
    record. Database errors are described without their DETAIL line, which may quote values."""
    if is_database_error(error):
        description = describe_database_error(error)
        log.error("event.error", event_id=event_id, error=description)
    else:
        description = type(error).__name__
        log.exception("event.error", event_id=event_id)
    return f"unexpected error ({description}); see the worker log"


def log_applied(
    applied: Iterable[tuple[state.LockedEvent, EventOutcome]], *, batched: bool
) -> None:
    """One `event.applied` line per event, after its transaction committed."""
    for event, outcome in applied:
        log.info("event.applied", event_id=event.id, event_type=event.event_type,
                 status=outcome.status, **({"batched": True} if batched else {}))  # fmt: skip
