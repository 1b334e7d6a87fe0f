"""`clerk.sync_recent`: the users Clerk changed since the last run, back to its watermark."""

from __future__ import annotations

import time

from sqlalchemy import Engine

from cpn_sync.fake_clerk import FakeClerk
from tests.workers.clerk_sync.conftest import expected_users, stored_users
from workers.clerk.api import ClerkClient
from workers.clerk.recent import FIRST_RUN_MS, sync_recent


def test_each_run_reads_back_to_the_last_watermark_only(
    engine: Engine, fake: FakeClerk, client: ClerkClient
) -> None:
    first = sync_recent(client)
    assert first.users == 0  # every generated user changed long before the last hour

    changed = sorted(fake.users)[:2]
    for user_id in changed:
        fake.update_user(user_id, first_name="Changed")
    second = sync_recent(client)
    later = sorted(fake.users)[2]
    fake.update_user(later, first_name="Later")
    requests_before = len(fake.recorded())
    third = sync_recent(client)

    assert second.counts["created"] == 2
    assert third.counts["created"] == 1
    assert third.counts["created"] + third.counts["unchanged"] == third.users <= 3
    assert len(fake.recorded()) - requests_before == 1  # one page: it stopped at the watermark
    stored = stored_users(engine)
    expected = expected_users(fake)
    assert stored == {user_id: expected[user_id] for user_id in [*changed, later]}


def test_a_first_run_looks_back_one_hour(
    engine: Engine, fake: FakeClerk, client: ClerkClient
) -> None:
    now_ms = int(time.time() * 1000)
    inside, outside = sorted(fake.users)[:2]
    fake.users[inside]["updated_at"] = now_ms - FIRST_RUN_MS + 60_000
    fake.users[outside]["updated_at"] = now_ms - FIRST_RUN_MS - 60_000
    fake.changed()

    sync_recent(client, now_ms=now_ms)

    assert set(stored_users(engine)) == {inside}
