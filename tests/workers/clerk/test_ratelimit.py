"""The request budget and the retry timing, on a clock the test moves."""

from __future__ import annotations

import email.utils
import time

import pytest

from workers.clerk.ratelimit import TokenBucket
from workers.clerk.retries import backoff_delay, retry_after_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


class TestTokenBucket:
    def test_a_full_window_goes_without_waiting(self, clock: Clock) -> None:
        bucket = TokenBucket(3, 10, clock=clock, sleep=clock.sleep)
        assert [bucket.acquire() for _ in range(3)] == [0, 0, 0]
        assert clock.slept == []

    def test_the_next_token_comes_back_a_window_after_the_first_request_finished(
        self, clock: Clock
    ) -> None:
        bucket = TokenBucket(3, 10, clock=clock, sleep=clock.sleep)
        with bucket.request():
            pass
        clock.now += 4
        for _ in range(2):
            with bucket.request():
                pass
        assert bucket.acquire() == pytest.approx(6)  # 10 s after the first
        bucket.release()
        assert bucket.acquire() == pytest.approx(4)  # 10 s after the second

    def test_a_slow_request_holds_its_token_until_it_finished(self, clock: Clock) -> None:
        """Clerk counts the request when it arrives, up to its answer: a window is counted
        from the answer, so a slow request's arrival never shares a window with the next."""
        bucket = TokenBucket(1, 10, clock=clock, sleep=clock.sleep)
        with bucket.request():
            clock.now += 15  # the answer takes 15 s
        assert bucket.acquire() == pytest.approx(10)

    def test_never_more_than_capacity_in_any_window(self, clock: Clock) -> None:
        bucket = TokenBucket(5, 10, clock=clock, sleep=clock.sleep)
        taken = []
        for _ in range(40):
            with bucket.request():
                taken.append(clock.now)
            clock.now += 0.7
        assert max(sum(1 for t in taken if s <= t < s + 10) for s in taken) <= 5

    def test_pause_holds_every_token_back(self, clock: Clock) -> None:
        bucket = TokenBucket(100, 10, clock=clock, sleep=clock.sleep)
        bucket.pause(2.5)
        assert bucket.acquire() == pytest.approx(2.5)
        bucket.pause(1)
        bucket.pause(0.5)  # a shorter pause does not shorten the longer one
        assert bucket.acquire() == pytest.approx(1)

    @pytest.mark.parametrize(("capacity", "window"), [(0, 10), (1, 0)])
    def test_a_budget_of_nothing_is_refused(self, capacity: int, window: float) -> None:
        with pytest.raises(ValueError, match="rate limit"):
            TokenBucket(capacity, window)


class TestRetryTiming:
    @pytest.mark.parametrize("attempt", range(1, 9))
    def test_backoff_doubles_up_to_the_cap_with_jitter(self, attempt: int) -> None:
        ceiling = min(30, 0.5 * 2 ** (attempt - 1))
        delays = {backoff_delay(attempt, 0.5, 30) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1

    @pytest.mark.parametrize(
        ("value", "seconds"), [("3", 3), ("0.5", 0.5), ("", 0), ("soon", 0), ("-4", 0)]
    )
    def test_retry_after_in_seconds(self, value: str, seconds: float) -> None:
        assert retry_after_seconds(value) == seconds

    def test_retry_after_as_an_http_date(self) -> None:
        value = email.utils.formatdate(time.time() + 30, usegmt=True)
        assert 28 <= retry_after_seconds(value) <= 30
