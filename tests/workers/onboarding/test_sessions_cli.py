"""`cpn-sync sessions import | rollback | list`, as an operator runs them: the console script in
a subprocess (import) or click's runner (rollback, list), against the real database and Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cpn_sync.cli import main
from db.models import DataMigration, User, UserInteraction, UserProfile
from tests.workers.onboarding.factories import Requests, entry, make_user, onboarding
from tests.workers.onboarding.jsonl_export import TAKEN_EMAIL, build_export
from workers.onboarding.data_migration import migrate_session_data

CLI = str(Path(sys.executable).parent / "cpn-sync")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def report(migrated: int, skipped: int, failures: list[str]) -> list[str]:
    """The import's report, line by line."""
    return [
        f"migrated: {migrated}",
        f"skipped (already done): {skipped}",
        f"failed: {len(failures)}",
        *failures,
    ]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def committed(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


class TestImport:
    @pytest.mark.slow
    def test_a_thousand_lines_of_good_duplicate_and_bad_data(
        self, clean_db: Engine, tmp_path: Path, recompute_requests: Requests
    ) -> None:
        with committed(clean_db) as session:
            existing = [make_user(session) for _ in range(5)]
            taken = make_user(session)
            taken.email = TAKEN_EMAIL
            session.commit()
        export = build_export(1000, [user.clerk_id for user in existing])
        path = tmp_path / "sessions.jsonl"
        path.write_bytes(export.text)

        first = run_cli("sessions", "import", str(path))

        with committed(clean_db) as session:
            failed_ids = dict(
                session.execute(
                    select(DataMigration.clerk_id, DataMigration.id).where(
                        DataMigration.status == "failed"
                    )
                ).all()
            )
        failure_lines = [
            f"  line {number}: {export.expected_reason(number, failed_ids.get(clerk_id))}"
            for number, (clerk_id, _bad) in sorted(export.bad.items())
        ]
        assert first.stdout.splitlines() == report(800, 100, failure_lines), first.stderr
        assert first.returncode == 1
        with committed(clean_db) as session:
            assert _counts(session) == {
                "users": 6 + 795 + 40,  # existing, created for good lines, bad that migrated
                "profiles": 800,
                "interactions": export.interactions,
                "completed": 800,
                "failed": 40,
            }
            migrated_user_ids = set(
                session.scalars(
                    select(DataMigration.user_id).where(DataMigration.status == "completed")
                )
            )
        requests = recompute_requests()
        assert len(requests) == 800
        assert {name for name, _args in requests} == {"cpn.recompute_user"}
        assert {args[0] for _name, args in requests} == migrated_user_ids

        again = run_cli("sessions", "import", str(path))

        assert again.stdout.splitlines() == report(0, 900, failure_lines), again.stderr
        assert again.returncode == 1
        with committed(clean_db) as session:
            assert _counts(session)["interactions"] == export.interactions
            assert _counts(session)["failed"] == 40

    def test_a_user_created_by_the_import_is_verified_and_unversioned(
        self, clean_db: Engine, tmp_path: Path, recompute_requests: Requests
    ) -> None:
        path = tmp_path / "one.jsonl"
        line = {"clerk_id": "user_new", "email": "new@example.com", "sessionData": onboarding()}
        path.write_text(json.dumps(line) + "\n\n")

        result = run_cli("sessions", "import", str(path))

        assert (result.returncode, result.stdout.splitlines()) == (0, report(1, 0, []))
        with committed(clean_db) as session:
            user = session.scalars(select(User).where(User.clerk_id == "user_new")).one()
            assert (user.email, user.email_verified, user.updated_at) == (
                "new@example.com",
                True,
                None,
            )
        assert recompute_requests() == [("cpn.recompute_user", [user.id])]

    def test_an_unreachable_broker_is_a_warning_and_the_data_stays(
        self, clean_db: Engine, tmp_path: Path
    ) -> None:
        path = tmp_path / "two.jsonl"
        lines = [
            {"clerk_id": f"user_{n}", "email": f"{n}@example.com", "sessionData": onboarding()}
            for n in range(2)
        ]
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))

        result = run_cli(
            "sessions", "import", str(path), env={"REDIS_URL": f"redis://127.0.0.1:{closed_port()}"}
        )

        assert (result.returncode, result.stdout.splitlines()) == (0, report(2, 0, []))
        assert (
            "warning: the broker is unreachable; 2 CPN recompute request(s) not sent "
            "(the CPN dirty scan will pick those users up)"
        ) in result.stderr
        with committed(clean_db) as session:
            assert _counts(session)["completed"] == 2

    def test_an_unreachable_database_stops_the_import_with_a_clear_error(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "one.jsonl"
        path.write_text(json.dumps({"clerk_id": "u", "email": "u@x", "sessionData": {}}) + "\n")

        result = run_cli(
            "sessions",
            "import",
            str(path),
            env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/none"},
        )

        assert result.returncode == 1
        assert (
            "Error: the database became unreachable at line 1; the lines before it are "
            "committed, run the import again to go on (lines already done are skipped)"
        ) in result.stderr


class TestRollbackCommand:
    def _migrated(self, engine: Engine, data: dict[str, Any]) -> tuple[User, int]:
        with committed(engine) as session:
            user = make_user(session)
            outcome = migrate_session_data(
                session, clerk_id=user.clerk_id, user_id=user.id, onboarding=data
            )
            session.commit()
        return user, outcome.migration_id

    def test_rollback_removes_the_rows_and_requests_a_recompute(
        self, clean_db: Engine, recompute_requests: Requests
    ) -> None:
        user, migration_id = self._migrated(clean_db, onboarding(dataEntry=[entry(), entry()]))

        result = invoke("sessions", "rollback", str(migration_id))

        assert result.exit_code == 0
        assert result.stdout == (
            f"rolled back migration {migration_id} (user {user.id}): "
            "profile deleted, 2 interaction(s) removed\n"
        )
        with committed(clean_db) as session:
            assert _counts(session) == {
                "users": 1,
                "profiles": 0,
                "interactions": 0,
                "completed": 0,
                "failed": 0,
            }
            row = session.get(DataMigration, migration_id)
            assert row is not None
            assert row.status == "rolled_back"
        assert recompute_requests() == [("cpn.recompute_user", [user.id])]

    def test_rolling_back_twice_is_a_clear_error_that_changes_nothing(
        self, clean_db: Engine, recompute_requests: Requests
    ) -> None:
        _user, migration_id = self._migrated(clean_db, onboarding())
        assert invoke("sessions", "rollback", str(migration_id)).exit_code == 0
        with committed(clean_db) as session:
            row = session.get(DataMigration, migration_id)
            assert row is not None
            rolled_back_at = row.rolled_back_at

        second = invoke("sessions", "rollback", str(migration_id))

        assert second.exit_code == 1
        assert second.stderr == f"Error: migration {migration_id}: was already rolled back\n"
        with committed(clean_db) as session:
            row = session.get(DataMigration, migration_id)
            assert row is not None
            assert (row.status, row.rolled_back_at) == ("rolled_back", rolled_back_at)
        assert len(recompute_requests()) == 1  # the first rollback's only

    def test_an_unknown_id_is_a_clear_error(self, clean_db: Engine) -> None:
        result = invoke("sessions", "rollback", "424242")

        assert (result.exit_code, result.stderr) == (
            1,
            "Error: migration 424242: no such data migration\n",
        )


class TestList:
    def test_lists_ids_statuses_and_counts_newest_first(self, clean_db: Engine) -> None:
        with committed(clean_db) as session:
            user = make_user(session)
            done = migrate_session_data(
                session,
                clerk_id=user.clerk_id,
                user_id=user.id,
                onboarding=onboarding(dataEntry=[entry()] * 3),
            )
            bad = migrate_session_data(
                session,
                clerk_id=user.clerk_id,
                user_id=user.id,
                onboarding=onboarding(profile=None, dataEntry=entry(nuts=8)),
            )
            session.commit()

        everything = invoke("sessions", "list").stdout.splitlines()
        failed_only = invoke("sessions", "list", "--status", "failed").stdout.splitlines()

        assert [line.split()[:6] for line in everything[1:3]] == [
            [str(bad.migration_id), str(user.id), user.clerk_id, "failed", "-", "0"],
            [str(done.migration_id), str(user.id), user.clerk_id, "completed", "created", "3"],
        ]
        assert everything[1].endswith("dataEntry.nuts: must be between 0 and 5")
        assert everything[-1] == "2 migration(s)"
        assert [line.split()[0] for line in failed_only[1:-1]] == [str(bad.migration_id)]
        output = "\n".join(everything)
        assert "Ana" not in output
        assert "example.com" not in output


def _counts(session: Session) -> dict[str, int]:
    def count(query: Any) -> int:
        return session.scalar(query) or 0

    def migrations(status: str) -> int:
        return count(
            select(func.count()).select_from(DataMigration).where(DataMigration.status == status)
        )

    return {
        "users": count(select(func.count()).select_from(User)),
        "profiles": count(select(func.count()).select_from(UserProfile)),
        "interactions": count(select(func.count()).select_from(UserInteraction)),
        "completed": migrations("completed"),
        "failed": migrations("failed"),
    }


def test_onboarding_is_the_group_and_sessions_its_alias() -> None:
    new, old = run_cli("onboarding", "--help"), run_cli("sessions", "--help")
    assert (new.returncode, old.returncode) == (0, 0)
    for command in ("import", "rollback", "list"):
        assert command in new.stdout
        assert command in old.stdout
