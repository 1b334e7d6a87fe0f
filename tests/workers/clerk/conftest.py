"""Fixtures of the Clerk API tests: a fake Clerk served on loopback, and clients of it.

These tests use no database: the worker tests' table cleaning is switched off here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from cpn_sync.fake_clerk import FakeClerk, RunningFake, running
from cpn_sync.fake_clerk_users import make_users
from workers.clerk.api import ClerkClient
from workers.clerk.config import ClerkConfig

KEY = "sk_test_clerk_api_tests_0123456789abcdef"
USERS = 3000

MakeClient = Callable[..., ClerkClient]


@pytest.fixture(autouse=True)
def clean_tables() -> None:
    """Overrides the worker tests' fixture: nothing here touches the database."""


@functools.cache
def _seed_users() -> bytes:
    return orjson.dumps(make_users(USERS))


@pytest.fixture
def fake() -> FakeClerk:
    """A fake holding USERS generated users (a fresh copy for every test: tests change them)."""
    fake = FakeClerk(secret_key=KEY)
    for user in orjson.loads(_seed_users()):
        fake.users[user["id"]] = user
    return fake


@pytest.fixture
def served(fake: FakeClerk) -> Iterator[RunningFake]:
    with running(fake) as handle:
        yield handle


@pytest.fixture
def make_client(served: RunningFake) -> Iterator[MakeClient]:
    """Clients of the served fake; fast backoff unless a test says otherwise."""
    clients: list[ClerkClient] = []

    def make(**options: Any) -> ClerkClient:
        options.setdefault("secret_key", KEY)
        options.setdefault("api_url", served.api_url)
        options.setdefault("rate_limit", 1000)
        options.setdefault("backoff_base_seconds", 0.01)
        options.setdefault("backoff_max_seconds", 0.05)
        client = ClerkClient(ClerkConfig(**options))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> ClerkClient:
    return make_client()
