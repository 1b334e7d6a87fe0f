"""Asking for one user's recompute, with bursts coalesced into one run: the one way to
request a recompute (`request_recompute`), for the onboarding migration, its import and rollback,
and the `cpn-sync cpn` command.

A migration, a rollback or an operator may ask several times within seconds for the same user.
The first request sets a Redis key (SET NX) and enqueues `cpn.recompute_user` with a countdown
of `CPN_COALESCE_SECONDS`; requests that find the key add nothing, because the queued run has
not started yet and will read every change committed until then. The run deletes the key before
it reads, so a request that arrives once it has started queues a new run.

The key expires on its own, so a lost message blocks requests only briefly, and the dirty scan
(every `CPN_SCAN_INTERVAL_SECONDS`) catches any interaction change in any case.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import redis
from celery import Celery

from cpn_sync.logs import get_logger
from cpn_sync.settings import get_settings
from cpn_sync.task_contract import CPN_RECOMPUTE_USER
from workers.core.celery_app import app
from workers.core.errors import is_transient
from workers.core.redis import worker_redis

KEY_SPARE_SECONDS = 60

log = get_logger(__name__)


def request_key(user_id: int) -> str:
    return f"cpn:recompute-requested:{user_id}"


def request_user_recompute(
    user_id: int, *, client: redis.Redis, celery_app: Celery, window_seconds: float
) -> bool:
    """Enqueue a recompute unless one is already waiting; answer whether this call enqueued."""
    key = request_key(user_id)
    ttl = math.ceil(window_seconds) + KEY_SPARE_SECONDS
    if not client.set(key, "1", nx=True, ex=ttl):
        return False
    try:
        celery_app.send_task(CPN_RECOMPUTE_USER, args=[user_id], countdown=window_seconds)
    except BaseException:
        client.delete(key)  # nothing is queued: the next request must be able to queue
        raise
    return True


def clear_request(user_id: int, *, client: redis.Redis) -> None:
    """Called by the run as it starts: later requests queue a run of their own."""
    client.delete(request_key(user_id))


def request_recompute(user_id: int) -> bool:
    """Once the caller's transaction committed: a coalesced `cpn.recompute_user`. Answers
    whether this call queued one."""
    return request_user_recompute(
        user_id,
        client=worker_redis(),
        celery_app=app,
        window_seconds=get_settings().cpn_coalesce_seconds,
    )


@dataclass
class RecomputeRequests:
    """Requests for many users (an import): one per user. A broker or Redis that cannot be
    reached is not an error here: the CPN dirty scan finds every user whose interactions
    changed since their latest result, so a lost request is only a later recompute. After the
    first failure it stops trying (each try would wait for the same unreachable server) and
    counts what it did not send."""

    request: Callable[[int], object] = request_recompute
    sent: int = 0
    unsent: int = 0

    def __call__(self, user_id: int) -> None:
        if self.unsent:
            self.unsent += 1
            return
        try:
            self.request(user_id)
        except Exception as error:
            if not is_transient(error):
                raise
            self.unsent += 1
            log.warning("cpn.recompute_not_requested", user_id=user_id, error=type(error).__name__)
            return
        self.sent += 1
