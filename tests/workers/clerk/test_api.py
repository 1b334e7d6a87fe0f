"""The Clerk API client against the fake Clerk on loopback: walks, resume, one user, refusals."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from cpn_sync.fake_clerk import FakeClerk, RunningFake
from cpn_sync.fake_clerk_users import make_user
from tests.workers.clerk.conftest import KEY, USERS, MakeClient
from workers.clerk.api import ClerkClient
from workers.clerk.config import ClerkConfig
from workers.clerk.errors import ClerkAuthError, ClerkParameterError


def walked_ids(
    client: ClerkClient, *, starting_after: str | None = None, prefetch: bool = True
) -> list[str]:
    walk = client.list_users(starting_after=starting_after, prefetch=prefetch)
    return [user["id"] for page in walk for user in page.users]


class TestListUsers:
    def test_walk_returns_every_user_once_in_created_at_order(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        users = [user for page in client.list_users() for user in page.users]
        assert len(users) == USERS
        assert {user["id"] for user in users} == set(fake.users)
        created = [user["created_at"] for user in users]
        assert created == sorted(created)

    def test_walk_without_prefetch_gives_the_same_pages(self, make_client: MakeClient) -> None:
        assert walked_ids(make_client(), prefetch=False) == walked_ids(make_client())

    def test_walk_pages_by_500_with_the_cursor_never_offset(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        pages = list(client.list_users())
        assert [len(page.users) for page in pages] == [500] * 6 + [0]
        sent = [dict(request.query) for request in fake.recorded()]
        assert all(query["limit"] == "500" for query in sent)
        assert all(query["order_by"] == "created_at" for query in sent)
        assert all("offset" not in query for query in sent)
        assert "starting_after" not in sent[0]
        assert [query["starting_after"] for query in sent[1:]] == [
            p.users[-1]["id"] for p in pages[:-1]
        ]

    def test_walk_of_an_uneven_count_stops_at_the_short_page(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        for index in range(USERS, USERS + 7):
            fake.add_user(make_user(index, created_at=2_000_000_000_000 + index))
        pages = list(client.list_users())
        assert [len(page.users) for page in pages] == [500] * 6 + [7]
        assert len(fake.recorded()) == 7

    def test_walk_resumes_after_a_recorded_cursor(self, make_client: MakeClient) -> None:
        first_run = make_client().list_users()
        seen = [user["id"] for page in (next(first_run), next(first_run)) for user in page.users]
        cursor = seen[-1]
        first_run.close()  # the process stopped here
        rest = walked_ids(make_client(), starting_after=cursor)
        assert len(seen) == 1000
        assert len(rest) == USERS - 1000
        assert set(seen).isdisjoint(rest)
        assert len(set(seen) | set(rest)) == USERS

    def test_page_cursor_is_the_last_id_and_survives_an_empty_page(
        self, client: ClerkClient
    ) -> None:
        pages = list(client.list_users(page_size=500))
        assert pages[0].cursor == pages[0].users[-1]["id"]
        assert pages[-1].users == []
        assert pages[-1].cursor == pages[-2].cursor

    def test_users_created_during_the_walk_are_seen(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        newcomer = make_user(99_999, seed=1, created_at=int(time.time() * 1000))
        walk = client.list_users()
        ids = [user["id"] for user in next(walk).users]
        fake.add_user(newcomer)
        ids += [user["id"] for page in walk for user in page.users]
        assert newcomer["id"] in ids
        assert len(ids) == USERS + 1

    @pytest.mark.parametrize("page_size", [0, 501, 1000])
    def test_page_size_outside_1_to_500_is_refused_before_any_request(
        self, client: ClerkClient, fake: FakeClerk, page_size: int
    ) -> None:
        """clerk/clerk-sdk-python#166: limit=501 silently gave 10 users; here it cannot be sent."""
        with pytest.raises(ValueError, match="between 1 and 500"):
            next(client.list_users(page_size=page_size))
        assert fake.recorded() == []


class TestPrefetch:
    def test_next_page_is_requested_while_the_caller_writes(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        fake.latency_seconds = 0.05
        walk = make_client().list_users()
        next(walk)
        time.sleep(0.3)  # the caller writes its page
        assert len(fake.recorded()) == 2
        walk.close()

    def test_without_prefetch_nothing_runs_ahead(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        walk = make_client().list_users(prefetch=False)
        next(walk)
        time.sleep(0.2)
        assert len(fake.recorded()) == 1
        walk.close()

    def test_prefetch_overlaps_fetching_and_writing(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        """Four pages of 0.25 s each to fetch and to write: about 2 s one after the other,
        about 1.25 s overlapped; at least 0.4 s saved, with room for a loaded machine."""
        fake.latency_seconds = 0.25

        def timed(prefetch: bool) -> float:
            started = time.monotonic()
            walk = make_client().list_users(prefetch=prefetch)
            for _page in itertools.islice(walk, 4):
                time.sleep(0.25)  # the caller's write of the page
            elapsed = time.monotonic() - started
            walk.close()
            return elapsed

        assert timed(prefetch=False) - timed(prefetch=True) >= 0.4

    def test_closing_early_stops_at_one_page_ahead(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        walk = make_client().list_users()
        next(walk)
        walk.close()
        time.sleep(0.1)
        assert len(fake.recorded()) <= 2
        assert not [t for t in threading.enumerate() if t.name.startswith("clerk-prefetch")]


class TestListUsersByUpdated:
    def test_walk_stops_at_the_watermark(self, client: ClerkClient, fake: FakeClerk) -> None:
        watermark = int(time.time() * 1000) - 60_000
        changed = list(fake.users)[10:15]
        for user_id in changed:
            fake.update_user(user_id, first_name="Changed")
        pages = list(client.list_users_by_updated(updated_since_ms=watermark))
        found = [user["id"] for page in pages for user in page.users]
        assert set(found) == set(changed)
        assert found == list(reversed(changed))  # most recently updated first
        sent = [dict(request.query) for request in fake.recorded()]
        assert sent == [{"limit": "500", "offset": "0", "order_by": "-updated_at"}]

    def test_walk_pages_by_offset_past_a_full_page(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        watermark = int(time.time() * 1000) - 60_000
        changed = list(fake.users)[:30]
        for user_id in changed:
            fake.update_user(user_id)
        client = make_client()
        found = [
            u["id"]
            for p in client.list_users_by_updated(updated_since_ms=watermark, page_size=10)
            for u in p.users
        ]
        assert sorted(found) == sorted(changed)
        offsets = [dict(request.query)["offset"] for request in fake.recorded()]
        assert offsets == ["0", "10", "20", "30"]

    def test_pages_of_the_updated_walk_carry_no_cursor(self, client: ClerkClient) -> None:
        pages = list(client.list_users_by_updated(updated_since_ms=0, page_size=500))
        assert {page.cursor for page in pages} == {None}

    def test_a_watermark_at_zero_walks_everyone(self, client: ClerkClient) -> None:
        found = [u["id"] for p in client.list_users_by_updated(updated_since_ms=0) for u in p.users]
        assert len(set(found)) == USERS


class TestGetUser:
    def test_known_user_is_returned(self, client: ClerkClient, fake: FakeClerk) -> None:
        user_id = list(fake.users)[42]
        user = client.get_user(user_id)
        assert user is not None
        assert user == fake.users[user_id]

    def test_unknown_user_is_none(self, client: ClerkClient, fake: FakeClerk) -> None:
        assert client.get_user("user_gone") is None
        assert [request.status for request in fake.recorded()] == [404]

    def test_deleted_user_is_none_and_leaves_the_walk(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        user_id = list(fake.users)[7]
        fake.delete_user(user_id)
        assert client.get_user(user_id) is None
        ids = walked_ids(client)
        assert user_id not in ids
        assert len(ids) == USERS - 1

    @pytest.mark.parametrize("user_id", ["", "user_a/../b"])
    def test_malformed_id_is_refused_before_any_request(
        self, client: ClerkClient, fake: FakeClerk, user_id: str
    ) -> None:
        with pytest.raises(ValueError, match="user id"):
            client.get_user(user_id)
        assert fake.recorded() == []


class TestRefusals:
    def test_wrong_key_raises_the_auth_error_naming_the_variable(
        self, make_client: MakeClient, fake: FakeClerk
    ) -> None:
        wrong = "sk_live_WRONGwrongWRONG0123456789"
        with pytest.raises(ClerkAuthError) as raised:
            next(make_client(secret_key=wrong).list_users())
        message = str(raised.value)
        assert "CLERK_SECRET_KEY" in message
        assert "refused" in message
        assert wrong not in message
        assert "WRONG" not in message
        assert raised.value.status == 401
        assert raised.value.path == "/users"
        assert len(fake.recorded()) == 1  # never retried

    def test_wrong_key_on_get_user_too(self, make_client: MakeClient) -> None:
        with pytest.raises(ClerkAuthError, match="refused CLERK_SECRET_KEY"):
            make_client(secret_key="sk_test_other").get_user("user_x")

    def test_403_is_a_refused_key(self, client: ClerkClient, fake: FakeClerk) -> None:
        fake.script(403)
        with pytest.raises(ClerkAuthError) as raised:
            client.get_user("user_x")
        assert raised.value.status == 403

    def test_422_names_the_parameter_from_clerks_error(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        with pytest.raises(ClerkParameterError) as raised:
            next(client.list_users(starting_after="user_not_a_user"))
        assert raised.value.parameters == ("starting_after",)
        assert "starting_after" in str(raised.value)
        assert "user_not_a_user" not in str(raised.value)
        assert raised.value.status == 422
        assert len(fake.recorded()) == 1

    def test_422_without_a_param_name_names_the_parameters_sent(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        fake.script(422)
        with pytest.raises(ClerkParameterError) as raised:
            next(client.list_users())
        assert raised.value.parameters == ("limit", "order_by")
        assert "limit, order_by" in str(raised.value)

    @pytest.mark.parametrize("key", ["", "pk_test_abc", "sk_test_has space", "sk_test_new\nline"])
    def test_a_malformed_key_is_refused_without_echoing_it(self, key: str) -> None:
        with pytest.raises(ValueError, match="CLERK_SECRET_KEY") as raised:
            ClerkConfig(secret_key=key)
        if key:
            assert key not in str(raised.value)


class TestConfig:
    @pytest.mark.parametrize(
        ("key", "limit", "expected"),
        [("sk_test_a", None, 100), ("sk_live_a", None, 1000), ("sk_live_a", 250, 250)],
    )
    def test_budget_follows_the_kind_of_key(
        self, key: str, limit: int | None, expected: int
    ) -> None:
        assert ClerkConfig(secret_key=key, rate_limit=limit).requests_per_window == expected

    @pytest.mark.parametrize("url", ["api.clerk.com/v1", "ftp://api.clerk.com/v1", ""])
    def test_a_url_that_is_not_http_is_refused(self, url: str) -> None:
        with pytest.raises(ValueError, match="CLERK_API_URL"):
            ClerkConfig(secret_key=KEY, api_url=url)

    def test_default_url_is_clerks(self) -> None:
        assert ClerkConfig(secret_key=KEY).api_url == "https://api.clerk.com/v1"

    def test_client_uses_the_served_url(self, served: RunningFake, client: ClerkClient) -> None:
        assert client.config.api_url == served.api_url
