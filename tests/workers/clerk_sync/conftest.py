"""Fixtures of the convergence tests: a fake Clerk on loopback holding generated users, a
client of it, and the database as the users table shows it."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text

from cpn_sync.fake_clerk import FakeClerk, RunningFake, running
from cpn_sync.fake_clerk_users import make_users
from workers.clerk.api import ClerkClient
from workers.clerk.config import ClerkConfig

KEY = "sk_test_clerk_sync_tests_0123456789abcdef"
USERS = 2000  # four pages of 500: enough for cursors, resumes and prefetching


ONBOARDING_EVERY = 30  # users with session-storage data to migrate: a few, they cost most


@functools.cache
def _seed_users() -> bytes:
    users = make_users(USERS, seed=16)
    for index, user in enumerate(users):
        if index % ONBOARDING_EVERY:
            user["unsafe_metadata"] = {}
    return orjson.dumps(users)


@pytest.fixture
def fake() -> FakeClerk:
    """A fresh copy of the generated users for every test (tests change them)."""
    fake = FakeClerk(secret_key=KEY)
    for user in orjson.loads(_seed_users()):
        fake.users[user["id"]] = user
    return fake


@pytest.fixture
def served(fake: FakeClerk) -> Iterator[RunningFake]:
    with running(fake) as handle:
        yield handle


def make_client(api_url: str, **options: Any) -> ClerkClient:
    options.setdefault("rate_limit", 1000)
    options.setdefault("backoff_base_seconds", 0.01)
    options.setdefault("backoff_max_seconds", 0.05)
    return ClerkClient(ClerkConfig(secret_key=KEY, api_url=api_url, **options))


@pytest.fixture
def client(served: RunningFake) -> Iterator[ClerkClient]:
    with make_client(served.api_url) as client:
        yield client


def ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def stored_users(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """The users table as Clerk's fields: clerk id -> (email, verified, names, image, times)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT clerk_id, email, email_verified, first_name, last_name, image_url, "
                "created_at, updated_at, last_sign_in_at FROM users"
            )
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def as_stored(user: dict[str, Any]) -> tuple[Any, ...]:
    """What the users table should hold for a Clerk user (its primary address)."""
    primary = next(
        address
        for address in user["email_addresses"]
        if address["id"] == user["primary_email_address_id"]
    )
    return (
        primary["email_address"],
        primary["verification"]["status"] == "verified",
        user["first_name"],
        user["last_name"],
        user["image_url"],
        ms(user["created_at"]),
        ms(user["updated_at"]),
        ms(user["last_sign_in_at"]) if user["last_sign_in_at"] is not None else None,
    )


def expected_users(fake: FakeClerk) -> dict[str, tuple[Any, ...]]:
    return {user_id: as_stored(user) for user_id, user in fake.users.items()}


def row_versions(engine: Engine) -> dict[str, str]:
    """Each user row's `xmin`: it changes whenever the row is rewritten, even to equal values."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT clerk_id, xmin::text FROM users"))
        return {clerk_id: version for clerk_id, version in rows}
