"""When each queue's canary task was last consumed, kept in one Redis hash.

Beat sends a canary to every queue each CANARY_INTERVAL_SECONDS; the worker that runs it
records the time, and the web's `/metrics` turns that into `cpn_canary_age_seconds{queue}`. An
age far above the interval means that nothing consumes the queue, or that its messages wait
longer than the interval (the canary expires unconsumed).

Both sides read the time from the Redis server, so the age does not depend on the clocks of the
web and worker hosts agreeing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import redis

CANARY_KEY = "cpn-sync:canaries"  # queue -> epoch seconds of the last consumed canary


def _seconds(server_time: tuple[int, int]) -> float:
    whole, micros = server_time
    return whole + micros / 1_000_000


def record_consumed(client: redis.Redis, queue: str) -> float:
    """Record that `queue`'s canary ran now (Redis's clock); answer that time."""
    now = _seconds(client.time())
    client.hset(CANARY_KEY, queue, repr(now))
    return now


def canary_ages(client: redis.Redis, queues: Iterable[str]) -> dict[str, float]:
    """Seconds since each queue's canary was last consumed; +Inf for one never consumed."""
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.hgetall(CANARY_KEY)
        server_time, recorded = pipe.execute()
    now = _seconds(server_time)
    consumed = {key.decode(): float(value) for key, value in recorded.items()}
    return {
        queue: max(0.0, now - consumed[queue]) if queue in consumed else math.inf
        for queue in queues
    }
