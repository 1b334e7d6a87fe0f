"""Clerk's limits and failures, as the fake serves them: 429 with Retry-After, 5xx, no answer,
and the client's own budget of requests per window, counted where they arrive."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from prometheus_client import REGISTRY

from cpn_sync.fake_clerk import FakeClerk, Recorded
from cpn_sync.local import free_port
from tests.workers.clerk.conftest import KEY, USERS, MakeClient
from workers.clerk.api import ClerkClient
from workers.clerk.config import ClerkConfig
from workers.clerk.errors import ClerkRateLimitedError, ClerkUnavailableError


def gaps_after_429(recorded: list[Recorded]) -> list[float]:
    """For each 429, the time until the next request arrived."""
    return [
        after.at - before.at
        for before, after in itertools.pairwise(recorded)
        if before.status == 429
    ]


def most_in_any_window(recorded: list[Recorded], window: float) -> int:
    times = sorted(request.at for request in recorded)
    return max(
        sum(1 for other in times[index:] if other < start + window)
        for index, start in enumerate(times)
    )


def requests_counted(status: str) -> float:
    value = REGISTRY.get_sample_value("cpn_clerk_api_requests_total", {"status": status})
    return value or 0.0


class TestTooManyRequests:
    def test_429_storm_finishes_and_never_retries_before_retry_after(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        fake.retry_after = 0.2
        fake.script(429, 429, 429, 429, 429)
        ids = [user["id"] for page in client.list_users() for user in page.users]
        assert len(ids) == len(set(ids)) == USERS
        gaps = gaps_after_429(fake.recorded())
        assert len(gaps) == 5
        assert min(gaps) >= 0.2

    def test_whole_seconds_of_retry_after_are_waited(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        fake.retry_after = 1
        fake.script(429)
        user_id = next(iter(fake.users))
        assert client.get_user(user_id) is not None
        assert gaps_after_429(fake.recorded())[0] >= 1.0

    def test_every_nth_request_throttled_during_a_walk(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        fake.retry_after = 0.05
        fake.throttle_every = 3
        ids = [user["id"] for page in client.list_users() for user in page.users]
        assert sorted(ids) == sorted(fake.users)
        statuses = [request.status for request in fake.recorded()]
        assert statuses.count(429) >= 3
        assert min(gaps_after_429(fake.recorded())) >= 0.05

    def test_a_429_holds_back_every_call_of_the_client(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        fake.retry_after = 0.5
        fake.script(429)
        user_id = next(iter(fake.users))
        other = threading.Thread(target=client.get_user, args=(user_id,))
        other.start()
        time.sleep(0.15)  # the other call has had its 429
        assert client.get_user(user_id) is not None
        other.join()
        recorded = fake.recorded()
        assert recorded[0].status == 429
        assert all(later.at - recorded[0].at >= 0.5 for later in recorded[1:])

    def test_endless_429_give_up_with_a_rate_limited_error(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        fake.retry_after = 0.01
        fake.script(*[429] * 4)
        with pytest.raises(ClerkRateLimitedError, match="429") as raised:
            make_client(max_throttled=3).get_user("user_x")
        assert raised.value.status == 429
        assert len(fake.recorded()) == 4

    def test_a_retry_after_beyond_the_cap_raises_at_once(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        fake.retry_after = 3600
        fake.script(429)
        started = time.monotonic()
        with pytest.raises(ClerkRateLimitedError, match="Retry-After 3600"):
            client.get_user("user_x")
        assert time.monotonic() - started < 1

    def test_requests_are_counted_by_status(self, client: ClerkClient, fake: FakeClerk) -> None:
        before = {status: requests_counted(status) for status in ("200", "404", "429")}
        fake.retry_after = 0.01
        fake.script(429)
        client.get_user(next(iter(fake.users)))
        client.get_user("user_gone")
        assert requests_counted("429") - before["429"] == 1
        assert requests_counted("200") - before["200"] == 1
        assert requests_counted("404") - before["404"] == 1


class TestServerErrors:
    def test_5xx_are_retried_until_an_answer(self, client: ClerkClient, fake: FakeClerk) -> None:
        fake.retry_after = 0.01
        fake.script(500, 502, 503)
        ids = [user["id"] for page in client.list_users() for user in page.users]
        assert len(set(ids)) == USERS
        assert [request.status for request in fake.recorded()][:4] == [500, 502, 503, 200]

    def test_a_503_is_not_retried_before_its_retry_after(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        fake.retry_after = 0.4
        fake.script(503)
        assert client.get_user(next(iter(fake.users))) is not None
        recorded = fake.recorded()
        assert [request.status for request in recorded] == [503, 200]
        assert recorded[1].at - recorded[0].at >= 0.4

    def test_5xx_give_up_after_the_bounded_attempts(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        fake.retry_after = 0.01
        fake.script(503, 503, 503, 503)
        with pytest.raises(ClerkUnavailableError, match="503") as raised:
            make_client(max_attempts=3).get_user("user_x")
        assert raised.value.status == 503
        assert raised.value.path == "/users/{user_id}"
        assert len(fake.recorded()) == 3

    def test_retries_back_off_exponentially(self, fake: FakeClerk, served: object) -> None:
        waits: list[float] = []
        config = ClerkConfig(
            secret_key=KEY,
            api_url=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
            max_attempts=5,
            backoff_base_seconds=1,
            backoff_max_seconds=5,
        )
        with (
            ClerkClient(config, sleep=waits.append) as client,
            pytest.raises(ClerkUnavailableError, match="ConnectError") as raised,
        ):
            client.get_user("user_x")
        assert raised.value.status is None
        assert len(waits) == 4
        for attempt, wait in enumerate(waits, start=1):
            ceiling = min(5, 2 ** (attempt - 1))
            assert ceiling / 2 <= wait <= ceiling

    def test_a_timeout_is_retried_then_reported(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        fake.latency_seconds = 0.5
        with pytest.raises(ClerkUnavailableError, match="ReadTimeout"):
            make_client(timeout_seconds=0.1, max_attempts=2).get_user("user_x")
        time.sleep(0.6)  # the fake records a request when it has answered it
        assert len(fake.recorded()) == 2


class TestBudget:
    def test_requests_stay_within_the_budget_per_window(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        client = make_client(rate_limit=5, rate_window_seconds=0.5)
        user_id = next(iter(fake.users))
        started = time.monotonic()
        for _ in range(16):
            client.get_user(user_id)
        assert time.monotonic() - started >= 1.5
        assert most_in_any_window(fake.recorded(), 0.5) <= 5

    def test_the_budget_is_shared_by_threads(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        client = make_client(rate_limit=5, rate_window_seconds=0.5)
        user_id = next(iter(fake.users))

        def calls() -> None:
            for _ in range(4):
                client.get_user(user_id)

        threads = [threading.Thread(target=calls) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(fake.recorded()) == 16
        assert most_in_any_window(fake.recorded(), 0.5) <= 5

    def test_a_walk_at_clerks_own_limit_is_never_throttled(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        """The fake enforces the budget as Clerk does (429 past N per window): none is sent."""
        fake.rate_limit = 4
        fake.rate_window_seconds = 0.5
        client = make_client(rate_limit=4, rate_window_seconds=0.5)
        ids = [user["id"] for page in client.list_users(page_size=250) for user in page.users]
        assert len(set(ids)) == USERS
        assert {request.status for request in fake.recorded()} == {200}
        assert len(fake.recorded()) == 13
