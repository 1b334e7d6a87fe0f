"""The unit of work that owns a task's transaction: it commits or rolls back, and sends
follow-up tasks only after a commit.

Handlers and queries flush, never commit. Follow-ups queued in a transaction that rolls back
are dropped with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.orm import Session

from cpn_sync.logs import get_logger
from workers.core.celery_app import app
from workers.core.engine import new_session
from workers.core.errors import is_transient

log = get_logger(__name__)

Publish = Callable[[str, list[Any]], None]


def send_task(name: str, args: list[Any]) -> None:
    """The default publisher: the worker's own Celery app, routed by task name.

    `ignore_result` matters: without it Celery subscribes to the Redis result backend for
    every message sent, and a publish fails when that subscription cannot be made.
    """
    app.send_task(name, args=args, ignore_result=True)


@dataclass
class UnitOfWork:
    session: Session
    follow_ups: list[tuple[str, list[Any]]] = field(default_factory=list)
    # Clerk users stored in this transaction: the events that waited for them are released
    # after the commit.
    arrived_users: set[str] = field(default_factory=set)
    # Work of other features to run once the transaction has committed (e.g. a CPN recompute
    # request, which goes through its feature's coalescing): (log name, callable).
    after_commit_calls: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def after_commit(self, task_name: str, args: list[Any]) -> None:
        """Send `task_name(*args)` once this transaction has committed; never if it rolls back."""
        self.follow_ups.append((task_name, args))

    def after_commit_call(self, name: str, call: Callable[[], object]) -> None:
        """Run `call()` once this transaction has committed; never if it rolls back."""
        self.after_commit_calls.append((name, call))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part that can fail alone: its writes and its follow-ups go if it raises."""
        mark, calls, arrived = (
            len(self.follow_ups),
            len(self.after_commit_calls),
            set(self.arrived_users),
        )
        nested = self.session.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            del self.follow_ups[mark:]
            del self.after_commit_calls[calls:]
            self.arrived_users = arrived
            raise
        nested.commit()


@contextmanager
def unit_of_work(
    publish: Publish | None = None, session: Session | None = None
) -> Iterator[UnitOfWork]:
    """One transaction: commit on success, roll back on any exception, then send the
    follow-ups. On a session of its own unless the caller lends one (and closes it)."""
    work = UnitOfWork(session or new_session())
    try:
        yield work
        work.session.commit()
    except BaseException:
        work.session.rollback()
        raise
    finally:
        if session is None:
            work.session.close()
    send_follow_ups(work.follow_ups, publish or send_task)
    run_after_commit(work.after_commit_calls)


def send_follow_ups(follow_ups: list[tuple[str, list[Any]]], publish: Publish) -> None:
    """Committed work stays committed when the broker is down: every follow-up has a periodic
    safety net (the inbox sweeper), so a failed send is logged and the others still go."""
    for name, args in follow_ups:
        try:
            publish(name, args)
        except BrokerOperationalError as error:
            log.warning("followup.not_sent", task=name, args=args, error=type(error).__name__)


def run_after_commit(calls: list[tuple[str, Callable[[], object]]]) -> None:
    """As follow-ups: a call that fails for a passing reason (broker or Redis unreachable) is
    logged, and the others still run; each has its own safety net (the CPN dirty scan)."""
    for name, call in calls:
        try:
            call()
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("followup.not_sent", task=name, error=type(error).__name__)
