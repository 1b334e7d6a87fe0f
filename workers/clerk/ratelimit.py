"""The request budget of one Clerk API client: at most N requests in any window of 10 seconds.

A token bucket whose tokens come back one window after their request finished (a sliding-window
log): Clerk counts requests when they arrive, which is after we send them and before we have the
answer, so counting from the answer keeps every window of arrivals within N whatever the network
delays (counting from the send let a slow request's arrival fall into the next window).
A bucket refilled at a constant N/10 per second would let a full bucket plus a window's refill,
up to 2N requests, into one 10-second window, and Clerk counts per window. A `429` pauses the
whole bucket for its `Retry-After`, so the pager's prefetch thread and a concurrent `get_user`
both wait instead of hitting the limit again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# How long a caller waits before looking again when every token is out with a request in flight.
IN_FLIGHT_POLL_SECONDS = 0.01


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
        self._in_flight = 0  # tokens taken by requests that have not finished
        self._finished: deque[float] = deque()  # when each returned request finished, oldest first
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def request(self) -> Iterator[None]:
        """Hold one token for the duration of one request."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> float:
        """Take one token, waiting until one is free; answer the seconds waited. Each acquire
        is followed by one `release` when its request has finished."""
        waited = 0.0
        while True:
            with self._lock:
                delay = self._try_take(self._clock())
            if delay <= 0:
                return waited
            self._sleep(delay)
            waited += delay

    def release(self) -> None:
        """The request of a token finished: the token comes back one window from now."""
        with self._lock:
            self._in_flight -= 1
            self._finished.append(self._clock())

    def pause(self, seconds: float) -> None:
        """Hand out no token for `seconds` from now (Clerk answered 429 with Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _try_take(self, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        while self._finished and self._finished[0] <= now - self.window_seconds:
            self._finished.popleft()
        if self._in_flight + len(self._finished) < self.capacity:
            self._in_flight += 1
            return 0.0
        if self._finished:
            return self._finished[0] + self.window_seconds - now
        return IN_FLIGHT_POLL_SECONDS
