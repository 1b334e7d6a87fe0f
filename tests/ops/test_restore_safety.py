"""`cpn-sync restore` loads only what pg_dump writes, and keeps erased users erased: real
pg_dump and psql against the run's PostgreSQL (as tests/ops/test_backup.py)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cpn_sync.backup.dump import BackupError, backup
from cpn_sync.backup.restore import restore
from cpn_sync.settings import libpq_url
from tests.ops.backup_data import fill
from tests.services import TestServers

CPN_SYNC = Path(sys.executable).parent / "cpn-sync"
NOW = dt.datetime(2025, 9, 1, 8, 0, 0, tzinfo=dt.UTC)
USER_TABLES = (
    "users", "user_profiles", "user_interactions", "user_cpn_results", "user_sessions",
    "data_migrations",
)  # fmt: skip


@pytest.fixture(scope="module")
def dump_file(test_servers: TestServers, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = test_servers.new_database()
    fill(source)
    return backup(source, tmp_path_factory.mktemp("backups"), now=NOW)


def count(url: str, query: str, *params: object) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def rows_of(url: str, clerk_id: str) -> dict[str, int]:
    """How many rows of each user table belong to the user."""
    return {
        table: count(url, f"SELECT count(*) FROM {table} WHERE clerk_id = %s", clerk_id)
        for table in USER_TABLES
    }


def tombstones(url: str) -> dict[str, dt.datetime]:
    with psycopg.connect(libpq_url(url)) as conn:
        return dict(conn.execute("SELECT clerk_id, deleted_at FROM deleted_users").fetchall())


def total_rows(url: str) -> int:
    return sum(count(url, f"SELECT count(*) FROM {table}") for table in USER_TABLES)


def with_line(dump_file: Path, target: Path, extra: str, *, after: str) -> int:
    """A copy of the dump with `extra` inserted after the first line starting with `after`;
    answers the line number of the inserted line."""
    lines = dump_file.read_text().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith(after)) + 1
    target.write_text("".join([*lines[:at], extra + "\n", *lines[at:]]))
    return at + 1


class TestRefusesWhatPgDumpDoesNotWrite:
    @pytest.mark.parametrize(
        ("extra", "after"),
        [
            ("\\! touch {marker}", "SELECT pg_catalog.set_config"),
            ("SELECT 1; \\! touch {marker}", "SET "),
            ("\\o | touch {marker}", "--"),
            ("\\copy users to program 'touch {marker}'", "SELECT pg_catalog.setval"),
            ("COPY public.users (id) FROM PROGRAM 'touch {marker}';", "SET "),
            ("\\connect postgres", "SELECT pg_catalog.set_config"),
            ("\\.\n\\! touch {marker}", "COPY public.users "),
            ("\\.x touch {marker}", "COPY public.users "),
        ],
        ids=[
            "shell",
            "shell-mid-line",
            "pipe",
            "copy-program",
            "server-program",
            "connect",
            "data-ends-early",
            "data-end-marker-with-more",
        ],
    )
    def test_a_command_hidden_in_a_dump_is_refused_and_nothing_runs(
        self, test_servers: TestServers, dump_file: Path, tmp_path: Path, extra: str, after: str
    ) -> None:
        marker = tmp_path / "ran"
        hostile = tmp_path / dump_file.name
        number = with_line(dump_file, hostile, extra.format(marker=marker), after=after)
        if extra.startswith("\\.\n"):
            number += 1  # the end of data is pg_dump's; the command after it is not
        target = test_servers.new_database()

        with pytest.raises(BackupError, match=f"restore refused: .* line {number} ") as refused:
            restore(target, hostile)

        assert not marker.exists()
        assert total_rows(target) == 0
        assert "touch" not in str(refused.value)
        assert "\n" not in str(refused.value)

    def test_a_dump_cut_short_in_its_data_is_refused(
        self, test_servers: TestServers, dump_file: Path, tmp_path: Path
    ) -> None:
        lines = dump_file.read_text().splitlines(keepends=True)
        cut = next(n for n, line in enumerate(lines) if line.startswith("COPY public.users ")) + 2
        short = tmp_path / dump_file.name
        short.write_text("".join(lines[:cut]))
        target = test_servers.new_database()

        with pytest.raises(BackupError, match=f"line {cut} is inside unfinished table data"):
            restore(target, short)
        assert total_rows(target) == 0

    def test_the_command_line_says_so_in_one_line_without_the_content(
        self, test_servers: TestServers, dump_file: Path, tmp_path: Path
    ) -> None:
        marker = tmp_path / "ran"
        hostile = tmp_path / dump_file.name
        number = with_line(dump_file, hostile, f"\\! touch {marker}", after="SET ")
        env = {**os.environ, "DATABASE_URL": test_servers.new_database(), "LOG_FORMAT": "json"}

        loaded = subprocess.run(
            [CPN_SYNC, "restore", hostile], env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

        assert loaded.returncode != 0
        assert not marker.exists()
        assert loaded.stderr.splitlines() == [
            f"Error: restore refused: {hostile} line {number} is a psql meta-command, not what "
            "`cpn-sync backup` (pg_dump) writes; nothing was loaded"
        ]


class TestTombstones:
    def test_the_backup_carries_them_and_the_restore_keeps_them(
        self, test_servers: TestServers, dump_file: Path
    ) -> None:
        target = test_servers.new_database()

        result = restore(target, dump_file)

        assert tombstones(target) == {"user_4": dt.datetime(2025, 8, 23, 12, 0, 0, 123456, dt.UTC)}
        assert result.tombstones == 1
        assert rows_of(target, "user_4") == dict.fromkeys(USER_TABLES, 0)

    def test_a_user_erased_after_the_backup_does_not_come_back(
        self, test_servers: TestServers, dump_file: Path
    ) -> None:
        """The target keeps the tombstones of users deleted since the backup: those users'
        restored rows are erased in the load's transaction, and the tombstones are merged."""
        target = test_servers.new_database()
        erased_at = dt.datetime(2025, 9, 2, tzinfo=dt.UTC)
        later = dt.datetime(2025, 9, 3, tzinfo=dt.UTC)
        with psycopg.connect(libpq_url(target)) as conn:
            conn.execute(
                "INSERT INTO deleted_users (clerk_id, deleted_at) VALUES"
                " ('user_0', %s), ('user_4', %s)",
                (erased_at, later),
            )
        assert sum(rows_of(target, "user_0").values()) == 0

        result = restore(target, dump_file)

        assert rows_of(target, "user_0") == dict.fromkeys(USER_TABLES, 0)
        assert (result.total_users, result.users_with_clerk_id) == (3, 3)
        assert rows_of(target, "user_1")["users"] == 1
        assert tombstones(target) == {
            "user_0": erased_at,
            "user_4": dt.datetime(2025, 8, 23, 12, 0, 0, 123456, dt.UTC),  # the earlier one
        }

    def test_a_backup_made_before_tombstones_were_backed_up_still_restores(
        self, test_servers: TestServers, dump_file: Path, tmp_path: Path
    ) -> None:
        old = tmp_path / dump_file.name
        text = dump_file.read_text()
        old.write_text(
            re.sub(r"^COPY public\.deleted_users .*?^\\\.\n", "", text, flags=re.M | re.S)
        )
        assert "deleted_users" not in old.read_text().replace("-- Data for Name: deleted", "")
        target = test_servers.new_database()
        with psycopg.connect(libpq_url(target)) as conn:
            conn.execute("INSERT INTO deleted_users (clerk_id) VALUES ('user_3')")

        result = restore(target, old)

        assert (result.total_users, result.tombstones) == (3, 1)
        assert rows_of(target, "user_3") == dict.fromkeys(USER_TABLES, 0)


def test_a_file_changed_after_its_check_loads_nothing(
    test_servers: TestServers, dump_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lines are checked again as they stream: psql never receives the bad line, and is
    stopped before its transaction can commit what it had."""
    import cpn_sync.backup.restore

    marker = tmp_path / "ran"
    hostile = tmp_path / dump_file.name
    number = with_line(dump_file, hostile, f"\\! touch {marker}", after="SELECT pg_catalog.setval")
    monkeypatch.setattr(cpn_sync.backup.restore, "check_dump", lambda *_args: None)
    target = test_servers.new_database()

    with pytest.raises(BackupError, match=f"line {number} is a psql meta-command"):
        restore(target, hostile)

    assert not marker.exists()
    assert total_rows(target) == 0
