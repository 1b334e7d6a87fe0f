"""The fake Clerk's own promises: deterministic users, Clerk-like ids and times, onboarding
data in the shape the front end writes, changes as Clerk makes them, a server to run."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx

from cpn_sync.fake_clerk import DEFAULT_KEY, FakeClerk
from cpn_sync.fake_clerk_users import make_users
from cpn_sync.local import free_port


def test_the_same_seed_gives_the_same_users() -> None:
    assert make_users(50, seed=3) == make_users(50, seed=3)
    assert {u["id"] for u in make_users(50, seed=3)}.isdisjoint(u["id"] for u in make_users(50))


def test_ids_are_shaped_like_clerks() -> None:
    users = make_users(200)
    assert all(re.fullmatch(r"user_[0-9A-Za-z]{27}", user["id"]) for user in users)
    assert len({user["id"] for user in users}) == 200
    assert all(u["primary_email_address_id"] == u["email_addresses"][0]["id"] for u in users)


def test_times_are_epoch_milliseconds_and_some_creation_times_tie() -> None:
    users = make_users(100)
    created = [user["created_at"] for user in users]
    assert all(1_700_000_000_000 < c < 2_000_000_000_000 for c in created)
    assert created == sorted(created)
    assert len(set(created)) < len(created)
    assert all(user["updated_at"] >= user["created_at"] for user in users)


def test_a_third_of_users_carry_onboarding_in_the_front_ends_shape() -> None:
    """DESIGN.md section 4, with values inside the bounds the migration accepts."""
    onboarded = [
        u["unsafe_metadata"]["onboarding"] for u in make_users(300) if u["unsafe_metadata"]
    ]
    assert len(onboarded) == 100
    for onboarding in onboarded:
        assert onboarding["sessionDataId"].startswith("ssd_")
        profile, entry = onboarding["profile"], onboarding["dataEntry"]
        assert set(profile) == {"firstName", "age", "ethnicity", "rating"}
        assert set(entry) == {"date", "cost", "time", "nuts", "notes"}
        assert 18 <= profile["age"] <= 99
        assert 0 <= profile["rating"] <= 10
        assert 15 <= entry["time"] <= 1440
        assert 0 <= entry["nuts"] <= 5
        assert entry["cost"] >= 0


def test_an_update_moves_updated_at_past_every_other_user() -> None:
    fake = FakeClerk.seeded(20)
    first, second = list(fake.users)[:2]
    newest = max(user["updated_at"] for user in fake.users.values())
    one = fake.update_user(first, first_name="New")
    two = fake.update_user(second)
    assert newest < one["updated_at"] < two["updated_at"]
    assert fake.users[first]["first_name"] == "New"


def test_serve_forever_answers_on_the_given_port() -> None:
    """What a `cpn-sync dev --fake-clerk N` would run."""
    port = free_port()
    code = f"from cpn_sync.fake_clerk import serve_forever; serve_forever(25, {port})"
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/v1/users",
                    params={"limit": 500},
                    headers={"Authorization": f"Bearer {DEFAULT_KEY}"},
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the fake did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert len(response.json()) == 25
    finally:
        process.terminate()
        process.wait(timeout=10)
