"""`clerk reconcile` and `clerk sync-user`: deletions confirmed by 404, creations, updates."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from cpn_sync.fake_clerk import FakeClerk
from tests.workers.clerk_sync.conftest import expected_users, stored_users
from tests.workers.conftest import Processor
from tests.workers.factories import store_event, user_data, user_event
from workers.clerk.api import ClerkClient
from workers.clerk.backfill import backfill
from workers.clerk.one_user import sync_user
from workers.clerk.reconcile import TooManyMissingError, reconcile


def _tombstones(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT clerk_id FROM deleted_users")).scalars())


def _drift(fake: FakeClerk) -> tuple[list[str], list[str], list[str]]:
    """Three kinds of drift made in Clerk behind the database's back: users created, updated
    and deleted whose webhooks never arrived."""
    ids = sorted(fake.users)
    missing, stale, extra = ids[:4], ids[10:13], ids[20:22]
    return missing, stale, extra


def _make_drift(engine: Engine, fake: FakeClerk, client: ClerkClient) -> tuple[Any, ...]:
    missing, stale, extra = _drift(fake)
    backfill(client)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM users WHERE clerk_id = ANY(:ids)"), {"ids": missing})
    for user_id in stale:
        fake.update_user(user_id, last_name="Changed")
    for user_id in extra:
        fake.delete_user(user_id)
    return missing, stale, extra


class TestReconcile:
    def test_repairs_each_kind_of_drift_and_counts_it(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        missing, stale, extra = _make_drift(engine, fake, client)

        report = reconcile(client)

        assert stored_users(engine) == expected_users(fake)
        assert (report.counts["missing"], report.counts["stale"], report.counts["extra"]) == (
            len(missing),
            len(stale),
            len(extra),
        )
        assert _tombstones(engine) == set(extra)

    def test_each_erasure_is_confirmed_by_a_404(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        _missing, _stale, extra = _make_drift(engine, fake, client)

        reconcile(client)

        asked = [request.path for request in fake.recorded() if request.status == 404]
        assert sorted(asked) == sorted(f"/v1/users/{user_id}" for user_id in extra)

    def test_a_user_the_list_did_not_show_but_clerk_has_is_kept(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        """The list is no proof: a user it skipped (here: one the walk had passed when it
        appeared) is asked for by id and kept."""
        backfill(client)
        late = sorted(fake.users, key=lambda user_id: fake.users[user_id]["created_at"])[0]
        hidden = fake.users.pop(late)
        seen_pages = 0

        def reappear(_users: int) -> None:
            nonlocal seen_pages
            seen_pages += 1
            if seen_pages == 1:
                fake.add_user(hidden)  # behind the cursor: this walk will not list it

        report = reconcile(client, progress=reappear)

        assert late in stored_users(engine)
        assert report.counts["extra"] == 0
        assert _tombstones(engine) == set()

    def test_a_tombstone_it_writes_stops_a_later_webhook(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient, process: Processor
    ) -> None:
        _missing, _stale, extra = _make_drift(engine, fake, client)
        reconcile(client)
        gone = extra[0]

        late = store_event(
            engine, user_event("user.updated", user_data(gone, email="late@example.com"))
        )
        process(late)

        assert gone not in stored_users(engine)

    def test_dry_run_reports_the_drift_and_repairs_nothing(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        missing, stale, extra = _make_drift(engine, fake, client)
        before = stored_users(engine)

        report = reconcile(client, dry_run=True)

        assert (report.counts["missing"], report.counts["stale"], report.counts["extra"]) == (
            len(missing),
            len(stale),
            len(extra),
        )
        assert stored_users(engine) == before
        assert _tombstones(engine) == set()

    def test_a_key_of_another_instance_erases_nobody(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        backfill(client)
        fake.users.clear()  # another instance: none of our users

        with pytest.raises(TooManyMissingError, match="CLERK_SECRET_KEY"):
            reconcile(client)

        assert len(stored_users(engine)) > 0
        assert _tombstones(engine) == set()


class TestSyncUser:
    def test_a_user_that_looks_wrong_is_made_equal_to_clerk(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        backfill(client)
        user_id = sorted(fake.users)[5]
        fake.update_user(user_id, first_name="Fixed")

        applied = sync_user(client, user_id)

        assert applied.result == "updated"
        assert stored_users(engine)[user_id] == expected_users(fake)[user_id]

    def test_a_user_clerk_no_longer_has_is_erased_with_a_tombstone(
        self, engine: Engine, fake: FakeClerk, client: ClerkClient
    ) -> None:
        backfill(client)
        user_id = sorted(fake.users)[6]
        fake.delete_user(user_id)

        applied = sync_user(client, user_id)

        assert applied.result == "erased"
        assert user_id not in stored_users(engine)
        assert _tombstones(engine) == {user_id}
