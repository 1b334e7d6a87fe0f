"""History without bloat: a new row only when the figures change, whatever wrote the change."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from db.cpn.recommendations import Thresholds
from tests.workers.cpn.conftest import (
    BASE_URL,
    MONDAY,
    add_interaction,
    latest_of,
    make_user,
    recompute,
    results_of,
)
from workers.cpn import jobs as cpn_jobs

OPTIONS = cpn_jobs.CpnOptions(limits=Thresholds(), public_base_url=BASE_URL, chunk_size=2)


def pending_changes(connection: Session, *user_ids: int) -> list[int]:
    rows = connection.execute(
        text(
            "SELECT user_id FROM user_interaction_changes "
            "WHERE user_id = ANY(:ids) ORDER BY user_id"
        ),
        {"ids": list(user_ids)},
    )
    return list(rows.scalars())


class TestRecompute:
    def test_nothing_changed_writes_no_new_row(self, session: Session, user: int) -> None:
        add_interaction(session, user, cost="40.00", minutes=60, nuts=2)
        assert recompute(session, user).written == [user]

        assert recompute(session, user).written == []
        assert len(results_of(session, user)) == 1

    def test_user_without_interactions_or_history_gets_no_row(
        self, session: Session, user: int
    ) -> None:
        assert recompute(session, user).written == []
        assert results_of(session, user) == []

    def test_deleting_every_interaction_records_a_zero_row(
        self, session: Session, user: int
    ) -> None:
        add_interaction(session, user, cost="40.00", minutes=60, nuts=2)
        recompute(session, user)
        session.execute(text("DELETE FROM user_interactions WHERE user_id = :u"), {"u": user})

        assert recompute(session, user).written == [user]

        row = latest_of(session, user)
        assert (row.total_interactions, row.total_cost, row.total_nuts) == (0, 0, 0)
        assert row.total_time_hours == 0
        assert row.average_cost_per_nut is None
        assert row.average_cost_per_hour is None
        assert row.overall_efficiency_score == 0
        assert row.calculation_period_start is None
        assert recompute(session, user).written == [], "a second zero row adds nothing"

    def test_each_new_row_has_its_own_share_token(self, session: Session, user: int) -> None:
        add_interaction(session, user, cost="40.00", minutes=60, nuts=2)
        recompute(session, user)
        add_interaction(session, user, cost="10.00", minutes=30, nuts=1)
        recompute(session, user)

        tokens = [row.share_token for row in results_of(session, user)]
        assert len(set(tokens)) == 2
        assert all(len(token) >= 43 for token in tokens)  # 32 random bytes, base64url

    def test_users_of_a_chunk_are_independent(self, session: Session) -> None:
        changed, unchanged, empty = make_user(session), make_user(session), make_user(session)
        add_interaction(session, changed, cost="40.00", minutes=60, nuts=2)
        add_interaction(session, unchanged, cost="20.00", minutes=60, nuts=1)
        recompute(session, unchanged)

        outcome = recompute(session, changed, unchanged, empty)

        assert outcome.written == [changed]
        assert len(results_of(session, unchanged)) == 1


@pytest.fixture
def committed(clean_db: Engine) -> Engine:
    """For tests whose changes must be committed, as the app's own writes are."""
    return clean_db


def _committed_user_with_result(engine: Engine) -> int:
    with Session(engine) as session, session.begin():
        user = make_user(session)
        add_interaction(session, user, cost="40.00", minutes=60, nuts=2)
        add_interaction(session, user, cost="20.00", minutes=30, nuts=1, on=MONDAY.replace(day=7))
    cpn_jobs.scan_dirty(engine, OPTIONS)
    return user


class TestDirtyScan:
    def test_insert_update_and_delete_in_sql_each_give_a_new_row(self, committed: Engine) -> None:
        user = _committed_user_with_result(committed)
        with Session(committed) as session:
            assert [r.total_interactions for r in results_of(session, user)] == [2]

        statements = [
            "INSERT INTO user_interactions (user_id, clerk_id, interaction_date, cost, "
            "time_minutes, nuts) SELECT id, clerk_id, DATE '2025-01-08', 5, 15, 1 "
            "FROM users WHERE id = :u",
            "UPDATE user_interactions SET cost = cost + 1 WHERE user_id = :u AND nuts = 2",
            "DELETE FROM user_interactions WHERE user_id = :u AND nuts = 1 AND cost = 20",
        ]
        for statement in statements:
            with committed.begin() as connection:
                connection.execute(text(statement), {"u": user})
            outcome = cpn_jobs.scan_dirty(committed, OPTIONS)
            assert (outcome.users, outcome.written) == (1, 1), statement

        with Session(committed) as session:
            rows = results_of(session, user)
            assert [r.total_interactions for r in rows] == [2, 3, 3, 2]
            assert [r.total_cost for r in rows] == [
                Decimal("60.00"),
                Decimal("65.00"),
                Decimal("66.00"),
                Decimal("46.00"),
            ]
            assert pending_changes(session, user) == []
        assert cpn_jobs.scan_dirty(committed, OPTIONS).users == 0

    def test_update_that_changes_no_figure_writes_no_row(self, committed: Engine) -> None:
        user = _committed_user_with_result(committed)
        with committed.begin() as connection:
            connection.execute(
                text("UPDATE user_interactions SET notes = 'edited' WHERE user_id = :u"),
                {"u": user},
            )

        outcome = cpn_jobs.scan_dirty(committed, OPTIONS)

        assert (outcome.users, outcome.written) == (1, 0)

    def test_scan_pages_through_many_dirty_users(self, committed: Engine) -> None:
        with Session(committed) as session, session.begin():
            users = [make_user(session) for _ in range(5)]
            session.execute(
                text(
                    "INSERT INTO user_interactions (user_id, clerk_id, interaction_date, cost, "
                    "time_minutes, nuts) SELECT id, clerk_id, DATE '2025-01-06', 9, 30, 1 "
                    "FROM users WHERE id = ANY(:ids)"
                ),
                {"ids": users},
            )

        outcome = cpn_jobs.scan_dirty(committed, OPTIONS)

        assert (outcome.chunks, outcome.users, outcome.written) == (3, 5, 5)

    @pytest.mark.parametrize("already_pending", [False, True], ids=["new_stamp", "restamped"])
    def test_change_committed_during_a_recompute_stays_pending(
        self, committed: Engine, already_pending: bool
    ) -> None:
        user = _committed_user_with_result(committed)
        if already_pending:  # the writer then re-stamps a row the recompute is about to consume
            with committed.begin() as connection:
                connection.execute(
                    text("UPDATE user_interactions SET nuts = nuts WHERE user_id = :u"), {"u": user}
                )
        with committed.connect() as writer:
            # Another transaction changes the user and commits only after the recompute read.
            writer.execute(
                text("UPDATE user_interactions SET cost = 1 WHERE user_id = :u"), {"u": user}
            )
            recompute_done = threading.Event()
            failures: list[BaseException] = []

            def run() -> None:
                try:
                    cpn_jobs.recompute_chunk(committed, [user], OPTIONS)
                except BaseException as error:  # reported by the assertion below
                    failures.append(error)
                finally:
                    recompute_done.set()

            worker = threading.Thread(target=run)
            worker.start()
            _wait_until_blocked_or_done(committed, recompute_done)
            writer.commit()
            worker.join(60)
        assert not failures

        with Session(committed) as session:
            assert pending_changes(session, user) == [user], "the later change is not lost"
        assert cpn_jobs.scan_dirty(committed, OPTIONS).written == 1
        with Session(committed) as session:
            assert latest_of(session, user).total_cost == Decimal("2.00")

    def test_deleting_a_user_with_interactions_leaves_no_stamp(self, committed: Engine) -> None:
        user = _committed_user_with_result(committed)
        with committed.begin() as connection:
            connection.execute(text("DELETE FROM users WHERE id = :u"), {"u": user})
        with Session(committed) as session:
            assert pending_changes(session, user) == []
            assert results_of(session, user) == []


def _wait_until_blocked_or_done(engine: Engine, done: threading.Event) -> None:
    """Until the recompute waits on the writer's row lock, or has finished without waiting."""
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    while dt.datetime.now() < deadline and not done.is_set():
        with engine.connect() as probe:
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        if waiting:
            return
        done.wait(0.05)
