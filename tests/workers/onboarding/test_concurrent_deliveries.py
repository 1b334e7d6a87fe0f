"""Two transactions migrating the same data at the same time (a webhook redelivery and an
operator's import, say): one completes, the other finds it done, and one set of rows exists."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from db.models import DataMigration
from tests.workers.onboarding.factories import count_rows, make_user, onboarding
from workers.onboarding.data_migration import MigrationOutcome, migrate_session_data

DEADLINE = 60.0


def test_concurrent_migrations_of_the_same_data_complete_once(clean_db: Engine) -> None:
    with Session(clean_db, expire_on_commit=False) as setup:
        user = make_user(setup)
        setup.commit()
    data = onboarding(dataEntry=[{"date": "2025-01-05", "cost": 40, "time": 60, "nuts": 1}] * 3)
    first_has_written = threading.Event()
    second_is_waiting = threading.Event()

    def first() -> MigrationOutcome:
        with Session(clean_db) as session:
            outcome = migrate_session_data(
                session, clerk_id=user.clerk_id, user_id=user.id, onboarding=data
            )
            first_has_written.set()
            assert second_is_waiting.wait(DEADLINE)
            session.commit()
            return outcome

    def second() -> MigrationOutcome:
        assert first_has_written.wait(DEADLINE)
        with Session(clean_db) as session:
            pid = session.scalar(text("SELECT pg_backend_pid()"))
            watcher = threading.Thread(target=_signal_when_blocked, args=(clean_db, pid))
            watcher.start()
            outcome = migrate_session_data(
                session, clerk_id=user.clerk_id, user_id=user.id, onboarding=data
            )
            session.commit()
            watcher.join(DEADLINE)
            return outcome

    def _signal_when_blocked(engine: Engine, pid: int) -> None:
        """Let the first commit only once the second really waits on its locks."""
        with engine.connect() as connection:
            for _ in range(int(DEADLINE * 20)):
                waiting = connection.scalar(
                    text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid},
                )
                if waiting:
                    second_is_waiting.set()
                    return
                threading.Event().wait(0.05)

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = [pool.submit(first), pool.submit(second)]
        done = [future.result(timeout=DEADLINE * 2) for future in outcomes]

    assert [outcome.status for outcome in done] == ["completed", "skipped"]
    assert done[1].migration_id == done[0].migration_id
    with Session(clean_db) as check:
        assert count_rows(check, user) == {"profiles": 1, "interactions": 3, "migrations": 1}
        statuses = check.scalars(select(DataMigration.status)).all()
        assert statuses == ["completed"]
