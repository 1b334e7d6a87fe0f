"""`webhooks.sync_me(request_id)`: the web's first-request sync call, worked by a worker.

On the latency-sensitive `webhooks` queue. A transient error (database, broker) retries by the
one policy; a user not stored yet without a Clerk key is looked for again, briefly, until the
call's SYNC_WAIT_SECONDS have passed (`workers.me_sync.calls`).
"""

from __future__ import annotations

from typing import Any

from celery import Task

from cpn_sync.task_contract import SYNC_ME
from workers.core.errors import is_transient
from workers.core.tasks import task
from workers.me_sync.calls import record_error, run_call

# Looks for the user while the caller waits: at most 30 s (SYNC_WAIT_SECONDS' ceiling) at
# pauses of up to 0.5 s, plus the transient retries.
MAX_RETRIES = 100


@task(SYNC_ME, bind=True, retry_transient=True, max_retries=MAX_RETRIES)
def sync_me(self: Task[Any, Any], request_id: int) -> None:
    try:
        again = run_call(request_id, self.request.retries)
    except Exception as error:
        if not is_transient(error):  # a transient one is retried; the call answers 202 meanwhile
            record_error(request_id)
        raise
    if again is not None:
        self.retry(countdown=again.seconds)
