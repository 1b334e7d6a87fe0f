"""How much one web process accepts of `POST /api/me/sync`: a token bucket per signed-in user
(SYNC_USER_REQUESTS_PER_MINUTE) and one for the whole process (SYNC_PROCESS_REQUESTS_PER_SECOND),
each answered `429` with `Retry-After`, so that no user, and no burst, floods the queue.

Per process, in memory: no round trip on the hot path. Behind N web processes a user gets at
most N times the per-user budget, which still bounds the queue. The table of users is bounded
too (least recently seen dropped first), so a stream of new user ids cannot grow it for ever.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

MAX_TRACKED_USERS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBucket:
    """`capacity` requests at once, refilled at `per_second`."""

    def __init__(self, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second

    def take(self, bucket: _Bucket, now: float) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.per_second)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.per_second


class SyncLimits:
    def __init__(self, user_per_minute: int, process_per_second: int) -> None:
        self._user = TokenBucket(user_per_minute, user_per_minute / 60)
        self._process = TokenBucket(process_per_second, process_per_second)
        self._process_bucket = _Bucket(process_per_second, time.monotonic())
        self._users: OrderedDict[str, _Bucket] = OrderedDict()

    def retry_after(self, user_id: str) -> int | None:
        """None when this call may go on; else whole seconds to wait (at least 1)."""
        now = time.monotonic()
        bucket = self._users.get(user_id)
        if bucket is None:
            bucket = self._users[user_id] = _Bucket(self._user.capacity, now)
            if len(self._users) > MAX_TRACKED_USERS:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(user_id)
        wait = self._user.take(bucket, now)
        if wait == 0:
            wait = self._process.take(self._process_bucket, now)
            if wait > 0:
                bucket.tokens += 1  # refused by the process: the user's token is given back
        return None if wait == 0 else max(1, math.ceil(wait))
