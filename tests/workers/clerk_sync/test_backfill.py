"""`clerk backfill`: every Clerk user through the versioned upsert, resumable, idempotent."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import Engine, text

from cpn_sync.fake_clerk import FakeClerk, RunningFake
from tests.workers.clerk_sync.conftest import (
    expected_users,
    make_client,
    ms,
    row_versions,
    stored_users,
)
from workers.clerk.api import ClerkClient
from workers.clerk.backfill import backfill
from workers.clerk.walks import WalkRunningError, one_run


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql)).scalar_one())


def _migrations(engine: Engine) -> int:
    return _count(engine, "SELECT count(*) FROM data_migrations WHERE status = 'completed'")


def _with_onboarding(fake: FakeClerk) -> int:
    return sum(1 for user in fake.users.values() if user["unsafe_metadata"].get("onboarding"))


class TestBackfill:
    def test_the_table_equals_the_fakes_users(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        report = backfill(client)

        assert stored_users(engine) == expected_users(fake)
        assert report.counts["created"] == len(fake.users) == report.users
        assert report.pages == 4
        assert report.failures == []

    def test_a_second_run_rewrites_no_row(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        backfill(client)
        versions = row_versions(engine)
        migrated = _migrations(engine)

        again = backfill(client)

        assert again.counts["unchanged"] == len(fake.users)
        assert again.counts["created"] == again.counts["updated"] == 0
        assert row_versions(engine) == versions
        assert _migrations(engine) == migrated

    def test_onboarding_is_migrated_once_for_the_users_that_carry_it(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        carrying = _with_onboarding(fake)
        assert carrying > 0

        first = backfill(client)
        backfill(client)

        assert first.counts["onboarding_completed"] == carrying
        assert _migrations(engine) == carrying
        assert _count(engine, "SELECT count(*) FROM user_interactions") == carrying

    def test_changes_in_clerk_are_applied_and_counted(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        backfill(client)
        changed = sorted(fake.users)[:5]
        for user_id in changed:
            fake.update_user(user_id, first_name="Renamed")

        report = backfill(client)

        assert report.counts["updated"] == 5
        assert stored_users(engine) == expected_users(fake)

    def test_a_tombstone_holds(self, engine: Engine, fake: FakeClerk, client: ClerkClient) -> None:
        gone = sorted(fake.users)[0]
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO deleted_users (clerk_id) VALUES (:id)"), {"id": gone}
            )

        report = backfill(client)

        assert report.counts["deleted"] == 1
        assert gone not in stored_users(engine)

    def test_an_older_snapshot_never_overwrites_a_newer_row(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        backfill(client)
        user_id = sorted(fake.users)[3]
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE users SET first_name = 'Newer', updated_at = :at WHERE clerk_id = :id"
                ),
                {"at": later, "id": user_id},
            )

        report = backfill(client)

        assert report.counts["unchanged"] == len(fake.users)
        assert stored_users(engine)[user_id][2] == "Newer"

    def test_dry_run_writes_nothing_and_says_what_it_would_do(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        report = backfill(client, dry_run=True)

        assert report.counts["created"] == len(fake.users)
        assert _count(engine, "SELECT count(*) FROM users") == 0
        assert _count(engine, "SELECT count(*) FROM data_migrations") == 0
        assert _count(engine, "SELECT count(*) FROM clerk_sync_state") == 0

    def test_a_finished_backfill_clears_its_cursor_and_the_next_walks_everything(
        self, engine: Engine, fake: FakeClerk, served: RunningFake, client: ClerkClient
    ) -> None:
        backfill(client)
        assert _count(engine, "SELECT count(*) FROM clerk_sync_state WHERE cursor IS NULL") == 1

        report = backfill(client)

        assert report.resumed_after is None
        assert report.users == len(fake.users)

    def test_429_storms_finish_and_never_come_back_before_retry_after(
        self, engine: Engine, fake: FakeClerk, served: RunningFake
    ) -> None:
        fake.throttle_every = 2
        fake.retry_after = 0.3
        with make_client(served.api_url) as client:
            backfill(client)

        assert stored_users(engine) == expected_users(fake)
        requests = fake.recorded()
        waits = [
            later.at - request.at
            for request, later in itertools.pairwise(requests)
            if request.status == 429
        ]
        assert waits
        assert min(waits) >= 0.3

    def test_a_second_run_at_the_same_time_is_refused(self, client: ClerkClient) -> None:
        with one_run("backfill"), pytest.raises(WalkRunningError, match="already running"):
            backfill(client)


class TestPageEdges:
    def test_a_user_without_email_fails_alone_with_its_reason(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        user_id = sorted(fake.users)[7]
        fake.users[user_id]["email_addresses"] = []

        report = backfill(client)

        assert report.counts["failed"] == 1
        assert report.failures == [(user_id, report.failures[0][1])]
        assert "no email address" in report.failures[0][1]
        assert len(stored_users(engine)) == len(fake.users) - 1

    def test_a_nul_in_a_name_fails_the_user_and_quotes_no_value(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        user_id = sorted(fake.users)[8]
        fake.users[user_id]["first_name"] = "Sec\u0000ret"

        report = backfill(client)

        assert [clerk_id for clerk_id, _ in report.failures] == [user_id]
        assert "data.first_name" in report.failures[0][1]
        assert "Sec" not in report.failures[0][1]
        assert len(stored_users(engine)) == len(fake.users) - 1

    def test_unstorable_onboarding_fails_only_the_migration(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        user_id = next(u for u, user in fake.users.items() if user["unsafe_metadata"])
        fake.users[user_id]["unsafe_metadata"]["onboarding"]["dataEntry"]["notes"] = "a\u0000b"

        report = backfill(client)

        assert user_id in stored_users(engine)
        assert report.counts["onboarding_failed"] == 1
        with engine.connect() as connection:
            errors = connection.execute(
                text("SELECT error_message FROM data_migrations WHERE clerk_id = :id"),
                {"id": user_id},
            ).scalar_one()
        assert "notes" in errors

    def test_users_who_exchanged_addresses_in_clerk_are_both_settled(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        backfill(client)
        first, second = sorted(fake.users)[10:12]
        one = fake.users[first]["email_addresses"][0]["email_address"]
        two = fake.users[second]["email_addresses"][0]["email_address"]
        fake.users[first]["email_addresses"][0]["email_address"] = two
        fake.update_user(first)
        fake.users[second]["email_addresses"][0]["email_address"] = one
        fake.update_user(second)

        report = backfill(client)

        assert report.failures == []
        assert stored_users(engine) == expected_users(fake)

    def test_times_are_clerks_milliseconds(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        backfill(client)
        user = fake.users[sorted(fake.users)[0]]
        assert stored_users(engine)[user["id"]][6] == ms(user["updated_at"])
