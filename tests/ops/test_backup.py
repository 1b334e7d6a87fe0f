"""`cpn-sync backup` / `restore`: a round trip through a real pg_dump and psql, against whichever
PostgreSQL the run uses (the embedded 18, or the machine's 15 with TEST_DATABASE_URL)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from cpn_sync.backup import pg_tools
from cpn_sync.backup.dump import (
    BACKUP_TABLES,
    TOMBSTONE_TABLE,
    BackupError,
    SchemaMissingError,
    ToolFailedError,
    backup,
)
from cpn_sync.backup.restore import RestoreRefusedError, restore
from cpn_sync.settings import libpq_url
from tests.ops.backup_data import AWKWARD_TEXT, fill, snapshot
from tests.services import TestServers

CPN_SYNC = Path(sys.executable).parent / "cpn-sync"
NOW = dt.datetime(2025, 8, 23, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def source_url(test_servers: TestServers) -> str:
    url = test_servers.new_database()
    fill(url)
    return url


@pytest.fixture(scope="module")
def dump_file(source_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backup(source_url, tmp_path_factory.mktemp("backups"), now=NOW)


def server_version_num(url: str) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0])


def restore_and_query(
    test_servers: TestServers, dump_file: Path, *queries: str
) -> list[list[tuple[Any, ...]]]:
    """Restore into a fresh migrated database, then answer each query's rows."""
    target = test_servers.new_database()
    restore(target, dump_file)
    with psycopg.connect(libpq_url(target)) as conn:
        return [conn.execute(query).fetchall() for query in queries]


def count_users(url: str) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT count(*) FROM users").fetchone()
    assert row is not None
    return int(row[0])


class TestBackupFile:
    def test_is_named_by_time_and_readable_only_by_its_owner(self, dump_file: Path) -> None:
        assert dump_file.name == "user_data_backup_20250823_120000.sql"
        assert dump_file.stat().st_mode & 0o777 == 0o600

    def test_holds_data_only_for_the_six_tables_and_the_tombstones(self, dump_file: Path) -> None:
        text = dump_file.read_text()
        copied = dict(re.findall(r"^COPY \w+\.(\w+) \(([^)]*)\) FROM stdin;$", text, re.M))
        assert sorted(copied) == sorted([*BACKUP_TABLES, TOMBSTONE_TABLE])
        interaction_columns = [c.strip() for c in copied["user_interactions"].split(",")]
        assert "cost" in interaction_columns
        for generated in ("cost_per_nut", "cost_per_hour", "nuts_per_hour"):
            assert generated not in interaction_columns
        assert "CREATE TABLE" not in text
        assert "webhook_events" not in text
        assert "alembic_version" not in text

    def test_a_second_backup_in_the_same_second_does_not_overwrite(
        self, source_url: str, dump_file: Path
    ) -> None:
        before = dump_file.read_bytes()
        with pytest.raises(BackupError, match="already exists"):
            backup(source_url, dump_file.parent, now=NOW)
        assert dump_file.read_bytes() == before
        assert [p.name for p in dump_file.parent.iterdir()] == [dump_file.name]

    def test_uses_the_pg_dump_of_the_servers_major_version(self, source_url: str) -> None:
        tool = pg_tools.find_tool("pg_dump", server_version_num(source_url))
        assert tool.major == server_version_num(source_url) // 10000


class TestRoundTrip:
    def test_every_row_and_sequence_comes_back(
        self, test_servers: TestServers, source_url: str, dump_file: Path
    ) -> None:
        target = test_servers.new_database()
        result = restore(target, dump_file)

        expected = snapshot(source_url)
        assert all(len(expected[table]) >= 2 for table in BACKUP_TABLES)
        assert snapshot(target) == expected
        assert (result.total_users, result.users_with_clerk_id) == (4, 4)
        assert result.latest_user == dt.datetime(2025, 8, 26, 12, 0, 0, 123456, tzinfo=dt.UTC)
        assert result.row_counts == {t: len(expected[t]) for t in BACKUP_TABLES}

    def test_generated_columns_are_computed_again_by_the_target(
        self, test_servers: TestServers, dump_file: Path
    ) -> None:
        (rows,) = restore_and_query(
            test_servers,
            dump_file,
            "SELECT cost, nuts, cost_per_nut, cost_per_hour, nuts_per_hour, notes"
            " FROM user_interactions ORDER BY id",
        )
        assert [str(r[2]) for r in rows] == ["60.25", "0.00", "20000000.00", "33.33"]
        assert [str(r[3]) for r in rows] == ["80.33", "0.00", "4166666.67", "42.55"]
        assert [str(r[4]) for r in rows] == ["1.333", "0.000", "0.208", "1.277"]
        assert rows[0][5] == AWKWARD_TEXT

    def test_new_rows_continue_after_the_restored_sequences(
        self, test_servers: TestServers, dump_file: Path
    ) -> None:
        max_id, new_id = restore_and_query(
            test_servers,
            dump_file,
            "SELECT max(id) FROM users",
            "INSERT INTO users (clerk_id, email) VALUES ('user_new', 'new@example.com')"
            " RETURNING id",
        )
        # Five users were made and the fifth deleted: id 5 is never handed out again.
        assert (max_id, new_id) == ([(4,)], [(6,)])

    def test_the_command_line_prints_the_seeds_verification(
        self, test_servers: TestServers, source_url: str, tmp_path: Path
    ) -> None:
        password = "never-shown-pw"  # the test servers trust local connections and ignore it
        source = make_url(source_url).set(password=password).render_as_string(False)
        target = make_url(test_servers.new_database()).set(password=password)
        env = {**os.environ, "DATABASE_URL": source, "LOG_FORMAT": "json"}

        made = subprocess.run(
            [CPN_SYNC, "backup", "--out", tmp_path / "out"], env=env, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        (dump,) = (tmp_path / "out").iterdir()
        assert made.stdout == f"Backup created: {dump}\n"

        env["DATABASE_URL"] = target.render_as_string(False)
        loaded = subprocess.run(
            [CPN_SYNC, "restore", dump], env=env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout.splitlines()[-1] == (
            "total_users=4 users_with_clerk_id=4 latest_user=2025-08-26T12:00:00.123456+00:00"
        )
        assert "users              4 rows" in loaded.stdout
        for output in (made.stdout, made.stderr, loaded.stdout, loaded.stderr):
            assert password not in output
            assert "person0@example.com" not in output


class TestRestoreRefuses:
    def test_a_database_that_holds_rows_and_changes_nothing(
        self, source_url: str, dump_file: Path
    ) -> None:
        before = snapshot(source_url)
        with pytest.raises(RestoreRefusedError, match=r"users: 4.*user_sessions: 3") as refused:
            restore(source_url, dump_file)
        assert refused.value.counts["data_migrations"] == 2
        assert snapshot(source_url) == before

    def test_rows_that_arrive_after_the_check_abort_the_load(
        self, test_servers: TestServers, dump_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The in-transaction guard: another process wrote a user after the first check."""
        import cpn_sync.backup.restore
        from cpn_sync.backup.dump import inspect_database

        target = test_servers.new_database()
        checked = inspect_database(target)
        with psycopg.connect(libpq_url(target)) as conn:
            conn.execute("INSERT INTO users (clerk_id, email) VALUES ('user_x', 'x@example.com')")
        monkeypatch.setattr(cpn_sync.backup.restore, "inspect_database", lambda _url: checked)

        with pytest.raises(ToolFailedError, match="no longer empty"):
            restore(target, dump_file)
        assert count_users(target) == 1

    def test_a_database_without_the_schema(
        self, test_servers: TestServers, dump_file: Path
    ) -> None:
        target = test_servers.new_database(migrate=False)
        with pytest.raises(SchemaMissingError, match="run `cpn-sync migrate`") as missing:
            restore(target, dump_file)
        assert missing.value.tables == sorted([*BACKUP_TABLES, TOMBSTONE_TABLE])

    def test_a_file_that_is_not_a_dump(self, test_servers: TestServers, tmp_path: Path) -> None:
        target = test_servers.new_database()
        bogus = tmp_path / "notes.sql"
        bogus.write_text("INSERT INTO users (clerk_id, email) VALUES ('a', 'b');\n")
        with pytest.raises(BackupError, match="not a plain-SQL pg_dump file"):
            restore(target, bogus)
        assert count_users(target) == 0

    def test_a_load_that_fails_part_way_leaves_the_database_empty(
        self, test_servers: TestServers, dump_file: Path, tmp_path: Path
    ) -> None:
        """One transaction: the users are loaded first, then a broken row aborts it all."""
        text = dump_file.read_text()
        broken = tmp_path / dump_file.name
        broken.write_text(text.replace("203.0.113.7", "not-an-address"))
        target = test_servers.new_database()
        with pytest.raises(ToolFailedError, match=r"type inet.*COPY user_sessions") as failed:
            restore(target, broken)
        assert "not-an-address" not in str(failed.value)  # quoted values are cut
        assert all(n == 0 for n in snapshot_counts(target).values())


def snapshot_counts(url: str) -> dict[str, int]:
    return {table: len(rows) for table, rows in snapshot(url).items() if table in BACKUP_TABLES}
