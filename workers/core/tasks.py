"""The one way to declare a task, and the one retry policy every task follows.

Every task has an explicit dotted name (its queue comes from the routes in
`cpn_sync.task_contract`), late acknowledgement and a bounded number of retries. Only transient
errors (`workers.core.errors.is_transient`: the database or the broker unreachable, a pool
timeout, a deadlock or serialization failure) are retried, after `retry_countdown`, at most
EVENT_MAX_RETRIES times; anything else is a bug or bad data and is not retried. Scheduled jobs
and canaries are declared with `max_retries=0`: the next tick is their retry.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Retry

from cpn_sync.settings import get_settings
from cpn_sync.task_contract import VISIBILITY_TIMEOUT
from workers.core.celery_app import app
from workers.core.errors import is_transient, without_values

TaskFunction = Callable[..., Any]


def retry_countdown(retries: int, maximum: float | None = None) -> float:
    """Exponential backoff (1, 2, 4, ... seconds, capped at EVENT_RETRY_BACKOFF_MAX_SECONDS)
    with jitter over its upper half.

    The cap stays far below the broker's visibility timeout, or Redis would deliver the
    delayed retry a second time.
    """
    if maximum is None:
        maximum = get_settings().event_retry_backoff_max_seconds
    ceiling = min(maximum, 2.0**retries, VISIBILITY_TIMEOUT / 4)
    return random.uniform(ceiling / 2, ceiling)


def retry_with(task: Task[Any, Any], error: Exception, countdown: float) -> NoReturn:
    """`task.retry(exc=error)`, raised without the exception being handled as its context:
    Celery formats the retry's traceback, chain included, into its log line and the
    `task-retried` event, and the original database error quotes row values."""
    try:
        task.retry(exc=error, countdown=countdown)
    except Retry as retry:
        raise retry from None
    raise AssertionError("Task.retry always raises")  # pragma: no cover


def task(
    name: str,
    *,
    max_retries: int | None = None,
    retry_transient: bool = False,
    bind: bool = False,
    **options: Any,
) -> Callable[[TaskFunction], Task[Any, Any]]:
    """Register the decorated function as the task `name`.

    `max_retries` defaults to EVENT_MAX_RETRIES. With `retry_transient`, a transient error is
    retried by this policy until the retries are spent, then propagates. `bind` tasks receive
    the task as their first argument (those that retry by themselves, with `retry_countdown`).
    Other `options` go to Celery as they are (time limits, `throws`, `reject_on_worker_lost`).
    """
    limit = get_settings().event_max_retries if max_retries is None else max_retries

    def register(function: TaskFunction) -> Task[Any, Any]:
        def run(self: Task[Any, Any], *args: Any, **kwargs: Any) -> Any:
            try:
                return function(self, *args, **kwargs) if bind else function(*args, **kwargs)
            except Exception as error:
                # A database error leaves the task (its retry or failure, which Celery logs and
                # sends as task events) without the values psycopg's message quotes.
                safe = without_values(error)
                retries = self.request.retries
                if retry_transient and is_transient(error) and retries < (self.max_retries or 0):
                    retry_with(self, safe, retry_countdown(retries))
                if safe is error:
                    raise
                raise safe from None

        body: TaskFunction = run
        body.__name__ = body.__qualname__ = function.__name__
        body.__module__ = function.__module__
        body.__doc__ = function.__doc__
        # Always bound: the wrapper needs the task for its retries; `bind` says whether the
        # function receives it too.
        bound: bool = True
        declared: Task[Any, Any] = app.task(
            name=name, bind=bound, max_retries=limit, acks_late=True, **options
        )(body)
        return declared

    return register
