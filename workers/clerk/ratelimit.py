"""The request budget of one Clerk API client: at most N requests in any window of 10 seconds.

A token bucket whose tokens come back one window after they were spent (a sliding-window log).
A bucket refilled at a constant N/10 per second would let a full bucket plus a window's refill,
up to 2N requests, into one 10-second window, and Clerk counts per window. A `429` pauses the
whole bucket for its `Retry-After`, so the pager's prefetch thread and a concurrent `get_user`
both wait instead of hitting the limit again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """Thread-safe: every call of one client shares one bucket."""

    def __init__(
        self,
        capacity: int,
        window_seconds: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity < 1:
            raise ValueError("the rate limit must allow at least one request a window")
        if window_seconds <= 0:
            raise ValueError("the rate limit window must be positive")
        self.capacity = capacity
        self.window_seconds = window_seconds
        self._clock = clock
        self._sleep = sleep
        self._spent: deque[float] = deque()  # when each token still out was taken, oldest first
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting until one is free; answer the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                delay = self._try_take(self._clock())
            if delay <= 0:
                return waited
            self._sleep(delay)
            waited += delay

    def pause(self, seconds: float) -> None:
        """Hand out no token for `seconds` from now (Clerk answered 429 with Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _try_take(self, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        while self._spent and self._spent[0] <= now - self.window_seconds:
            self._spent.popleft()
        if len(self._spent) < self.capacity:
            self._spent.append(now)
            return 0.0
        return self._spent[0] + self.window_seconds - now
