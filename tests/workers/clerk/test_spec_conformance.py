"""The fake Clerk API answers as Clerk's published spec says, so it cannot drift from Clerk.

Every answer the fake serves is validated against the schema the spec gives for that operation
and status; the parameters the fake accepts (names, bounds, defaults) are read from the spec.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from cpn_sync import fake_clerk_queries as queries
from cpn_sync.fake_clerk import FakeClerk, RunningFake
from cpn_sync.fake_clerk_users import make_users
from tests.services import SHARED
from tests.workers.clerk import spec
from tests.workers.clerk.conftest import KEY
from workers.clerk.api import MAX_PAGE_SIZE, ClerkClient

USERS = "/users"
USER = "/users/{user_id}"


def get(served: RunningFake, path: str, key: str = KEY, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{served.api_url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}
    )


def assert_conforms(response: httpx.Response, path: str) -> None:
    schema = spec.response_schema(path, response.status_code)
    assert response.headers["content-type"] == "application/json"
    assert spec.violations(response.json(), schema) == []


class TestValidator:
    """Guards the tests below against a validator that accepts anything."""

    def test_nullable_fields_accept_null_and_others_do_not(self) -> None:
        user_schema = spec.response_schema(USER, 200)
        user = make_users(1)[0]
        assert (
            spec.violations({**user, "first_name": None, "private_metadata": None}, user_schema)
            == []
        )
        assert spec.violations({**user, "id": None}, user_schema) != []
        assert spec.violations({**user, "created_at": "yesterday"}, user_schema) != []

    def test_extra_and_missing_fields_are_refused(self) -> None:
        user_schema = spec.response_schema(USER, 200)
        user = make_users(1)[0]
        assert spec.violations({**user, "not_in_clerk": 1}, user_schema) != []
        assert spec.violations({k: v for k, v in user.items() if k != "banned"}, user_schema) != []

    def test_a_clerk_published_example_conforms(self) -> None:
        example = json.loads((SHARED / "clerk-payloads" / "user.created.json").read_text())
        assert spec.violations(example["data"], spec.response_schema(USER, 200)) == []


class TestResponses:
    def test_users_page_conforms(self, served: RunningFake) -> None:
        response = get(served, USERS, limit=500, order_by="created_at")
        assert response.status_code == 200
        assert len(response.json()) == 500
        assert_conforms(response, USERS)

    def test_every_generated_user_conforms(self) -> None:
        schema = spec.response_schema(USER, 200)
        for user in make_users(300, seed=7):
            assert spec.violations(user, schema) == [], user["id"]

    def test_one_user_conforms(self, served: RunningFake, fake: FakeClerk) -> None:
        user_id = next(iter(fake.users))
        response = get(served, f"/users/{user_id}")
        assert response.status_code == 200
        assert response.json()["id"] == user_id
        assert_conforms(response, USER)

    def test_updated_user_conforms(self, served: RunningFake, fake: FakeClerk) -> None:
        user_id = next(iter(fake.users))
        fake.update_user(user_id, first_name=None, unsafe_metadata={})
        assert_conforms(get(served, f"/users/{user_id}"), USER)

    @pytest.mark.parametrize("path", [USERS, "/users/user_x"])
    def test_wrong_key_is_401_with_clerks_error_body(self, served: RunningFake, path: str) -> None:
        response = get(served, path, key="sk_test_wrong")
        assert response.status_code == 401
        assert_conforms(response, USER if path != USERS else USERS)

    def test_missing_key_is_401(self, served: RunningFake) -> None:
        response = httpx.get(f"{served.api_url}/users")
        assert response.status_code == 401
        assert_conforms(response, USERS)

    def test_unknown_user_is_404_with_clerks_error_body(self, served: RunningFake) -> None:
        response = get(served, "/users/user_unknown")
        assert response.status_code == 404
        assert_conforms(response, USER)
        assert response.json()["errors"][0]["code"] == "resource_not_found"

    @pytest.mark.parametrize(
        ("params", "param_name"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": 501}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"offset": -1}, "offset"),
            ({"order_by": "-updated_at", "starting_after": "user_x"}, "starting_after"),
            ({"order_by": "created_at", "starting_after": "user_x"}, "starting_after"),
            ({"starting_after": "user_x", "offset": 10}, "starting_after"),
            ({"order_by": "shoe_size"}, "order_by"),
            ({"email_address": "a@example.com"}, "email_address"),
        ],
    )
    def test_refused_parameters_are_422_naming_the_parameter(
        self, served: RunningFake, params: dict[str, Any], param_name: str
    ) -> None:
        response = get(served, USERS, **params)
        assert response.status_code == 422
        assert_conforms(response, USERS)
        assert response.json()["errors"][0]["meta"]["param_name"] == param_name

    def test_429_body_is_the_specs_too_many_requests(
        self, served: RunningFake, fake: FakeClerk
    ) -> None:
        """The spec declares 429 (`TooManyRequests`) on other operations only; Clerk's rate
        limits apply to every endpoint, so its shared answer is the one to match."""
        assert 429 not in spec.declared_statuses(USERS)
        fake.script(429)
        response = get(served, USERS)
        assert response.status_code == 429
        assert float(response.headers["Retry-After"]) > 0
        schema = spec.component_response_schema("TooManyRequests")
        assert spec.violations(response.json(), schema) == []

    def test_the_fakes_own_budget_answers_429_with_retry_after(
        self, served: RunningFake, fake: FakeClerk
    ) -> None:
        fake.rate_limit = 2
        assert [get(served, USERS).status_code for _ in range(2)] == [200, 200]
        response = get(served, USERS)
        assert response.status_code == 429
        assert 1 <= float(response.headers["Retry-After"]) <= 10
        schema = spec.component_response_schema("TooManyRequests")
        assert spec.violations(response.json(), schema) == []

    def test_every_status_the_fake_answers_is_declared_or_known(self) -> None:
        """401/404/422 come from the spec; 429 is checked above; 5xx only when scripted."""
        assert {200, 401, 422} <= spec.declared_statuses(USERS)
        assert {200, 401, 404} <= spec.declared_statuses(USER)


class TestParameters:
    def test_the_fake_knows_every_parameter_of_the_spec(self) -> None:
        names = set(spec.parameters(USERS))
        assert set(queries.PARAMETERS) | set(queries.UNSUPPORTED) == names
        assert not set(queries.PARAMETERS) & set(queries.UNSUPPORTED)

    def test_limit_bounds_and_default_are_the_specs(self) -> None:
        limit = spec.parameters(USERS)["limit"]["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (
            1,
            queries.MAX_LIMIT,
            queries.DEFAULT_LIMIT,
        )
        assert limit["maximum"] == MAX_PAGE_SIZE

    def test_offset_bound_is_the_specs(self) -> None:
        offset = spec.parameters(USERS)["offset"]["schema"]
        assert (offset["minimum"], offset["default"]) == (0, 0)

    def test_order_by_default_and_fields_are_the_specs(self) -> None:
        order_by = spec.parameters(USERS)["order_by"]
        assert order_by["schema"]["default"] == queries.DEFAULT_ORDER
        description = " ".join(order_by["description"].split())
        listed = re.search(r"order the returned users by their (.*?)\.", description)
        assert listed is not None
        fields = set(re.findall(r"`([a-z_0-9]+)`", listed.group(1)))
        assert set(queries.ORDER_FIELDS) <= fields

    def test_cursor_orders_are_the_specs(self) -> None:
        description = " ".join(spec.parameters(USERS)["starting_after"]["description"].split())
        allowed = re.search(r"`order_by` omitted, or set to (.*?)\.", description)
        assert allowed is not None
        assert set(re.findall(r"`([+-]?created_at)`", allowed.group(1))) == set(
            queries.CURSOR_ORDERS
        )
        assert "422" in description

    def test_user_id_filter_is_a_list_of_up_to_100(self) -> None:
        user_id = spec.parameters(USERS)["user_id"]
        assert user_id["schema"]["type"] == "array"
        assert f"up to {queries.MAX_IDS} user IDs" in user_id["description"]

    def test_get_user_takes_the_user_id_in_the_path(self) -> None:
        assert spec.parameters(USER)["user_id"]["in"] == "path"

    @pytest.mark.parametrize("limit", [1, 500])
    def test_limits_at_the_specs_bounds_are_served(self, served: RunningFake, limit: int) -> None:
        response = get(served, USERS, limit=limit)
        assert response.status_code == 200
        assert len(response.json()) == limit

    def test_default_page_is_ten_newest_first(self, served: RunningFake) -> None:
        users = get(served, USERS).json()
        assert len(users) == 10
        keys = [(user["created_at"], user["id"]) for user in users]
        assert keys == sorted(keys, reverse=True)

    def test_user_id_filter_includes_and_excludes(
        self, served: RunningFake, fake: FakeClerk
    ) -> None:
        first, second, third = list(fake.users)[:3]
        found = get(served, USERS, user_id=[first, f"+{second}"]).json()
        assert {user["id"] for user in found} == {first, second}
        excluded = get(served, USERS, user_id=[f"-{third}"], limit=500, order_by="created_at")
        assert third not in {user["id"] for user in excluded.json()}


class TestClientRequests:
    def test_every_request_of_the_client_is_one_the_spec_allows(
        self, client: ClerkClient, fake: FakeClerk
    ) -> None:
        """The client's side of the contract, read from the spec rather than from the fake."""
        list(client.list_users())
        list(client.list_users_by_updated(updated_since_ms=0))
        client.get_user(next(iter(fake.users)))
        declared = spec.parameters(USERS)
        limit, offset = declared["limit"]["schema"], declared["offset"]["schema"]
        cursor_rule = " ".join(declared["starting_after"]["description"].split())
        listed = re.search(r"`order_by` omitted, or set to (.*?)\.", cursor_rule)
        assert listed is not None
        cursor_orders = set(re.findall(r"`([+-]?created_at)`", listed.group(1)))
        lists = [dict(r.query) for r in fake.recorded() if r.path == "/v1/users"]
        assert len(lists) > 10
        for query in lists:
            assert set(query) <= set(declared)
            assert limit["minimum"] <= int(query["limit"]) <= limit["maximum"]
            assert int(query.get("offset", 0)) >= offset["minimum"]
            if "starting_after" in query:
                assert query["order_by"] in cursor_orders
                assert int(query.get("offset", 0)) == 0


COUNT = "/users/count"


class TestCount:
    """`GET /users/count`: the length of the backfill's progress bar."""

    def test_count_conforms_and_counts_every_user(
        self, served: RunningFake, fake: FakeClerk
    ) -> None:
        response = get(served, COUNT)

        assert response.status_code == 200
        assert_conforms(response, COUNT)
        assert response.json()["total_count"] == len(fake.users)

    def test_the_user_id_filter_counts_those_users(
        self, served: RunningFake, fake: FakeClerk
    ) -> None:
        some = sorted(fake.users)[:3]
        response = httpx.get(
            f"{served.api_url}{COUNT}",
            params=[("user_id", user_id) for user_id in [*some, "user_unknown"]],
            headers={"Authorization": f"Bearer {KEY}"},
        )

        assert response.json()["total_count"] == 3

    def test_its_parameters_are_the_specs_and_the_rest_are_refused(
        self, served: RunningFake
    ) -> None:
        assert set(queries.COUNT_PARAMETERS) <= set(spec.parameters(COUNT))
        response = get(served, COUNT, email_address="someone@example.com")

        assert response.status_code == 422
        assert 422 in spec.declared_statuses(COUNT)
        assert_conforms(response, COUNT)

    def test_the_client_reads_the_count(self, client: ClerkClient, fake: FakeClerk) -> None:
        assert client.count_users() == len(fake.users)
