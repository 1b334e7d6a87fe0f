"""Asking for one user's recompute, with bursts coalesced into one run.

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

import redis
from celery import Celery

from cpn_sync.task_contract import CPN_RECOMPUTE_USER

KEY_SPARE_SECONDS = 60


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
