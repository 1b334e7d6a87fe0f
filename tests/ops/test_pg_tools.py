"""Choosing pg_dump / psql by the server's major version, and keeping the password off argv."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from cpn_sync.backup import pg_tools
from cpn_sync.backup.dump import backup
from cpn_sync.backup.pg_tools import ClientTool, NoMatchingToolError, find_tool
from cpn_sync.backup.restore import restore
from cpn_sync.settings import libpq_url
from tests.ops.backup_data import fill, snapshot
from tests.services import TestServers


def fake_tool(directory: Path, name: str, output: str, status: int = 0) -> Path:
    """An executable that answers `--version` like a PostgreSQL client program would."""
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\nexit {status}\n")
    path.chmod(0o755)
    return path


def versions(tmp_path: Path, *majors: int) -> list[Path]:
    return [
        fake_tool(tmp_path, f"pg_dump{major}", f"pg_dump (PostgreSQL) {major}.4")
        for major in majors
    ]


class TestFindTool:
    def test_the_exact_major_version_wins_over_a_newer_one_listed_first(
        self, tmp_path: Path
    ) -> None:
        paths = versions(tmp_path, 18, 16, 17)
        assert find_tool("pg_dump", 160004, paths) == ClientTool(paths[1], 16)

    def test_without_an_exact_match_the_nearest_newer_one(self, tmp_path: Path) -> None:
        paths = versions(tmp_path, 18, 15, 17)
        assert find_tool("pg_dump", 160004, paths) == ClientTool(paths[2], 17)

    def test_only_older_ones_is_an_error_naming_the_server_version(self, tmp_path: Path) -> None:
        paths = versions(tmp_path, 14, 15)
        with pytest.raises(NoMatchingToolError) as error:
            find_tool("pg_dump", 160004, paths)
        message = str(error.value)
        assert "no pg_dump for PostgreSQL 16 (server_version_num 160004)" in message
        assert f"{paths[0]} (14), {paths[1]} (15)" in message
        assert "postgresql-client-16" in message

    def test_programs_that_do_not_answer_a_version_are_ignored(self, tmp_path: Path) -> None:
        broken = [
            fake_tool(tmp_path, "fails", "pg_dump (PostgreSQL) 16.1", status=1),
            fake_tool(tmp_path, "talks", "not a version"),
            tmp_path / "missing",
        ]
        not_executable = tmp_path / "plain"
        not_executable.write_text("pg_dump (PostgreSQL) 16.1")
        with pytest.raises(NoMatchingToolError, match="found: none"):
            find_tool("pg_dump", 160000, [*broken, not_executable])

    def test_the_embedded_wheels_programs_are_candidates(self) -> None:
        bin_dir = pg_tools.embedded_bin_dir()
        assert bin_dir is not None
        for tool in ("pg_dump", "psql"):
            assert bin_dir / tool in pg_tools.candidate_paths(tool)
            assert pg_tools.tool_major(bin_dir / tool) == 18


class TestConnectionArgs:
    def test_the_password_goes_in_the_environment_not_the_command_line(self) -> None:
        url = "postgresql+psycopg://backup:p%40ss%20w%3Ard@db.internal:6543/cpn?sslmode=require"
        conninfo, env = pg_tools.connection_args(url)
        assert "p@ss w:rd" not in conninfo
        assert "p%40ss" not in conninfo
        assert env == {"PGPASSWORD": "p@ss w:rd"}
        assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
            "user": "backup", "host": "db.internal", "port": "6543", "dbname": "cpn",
            "sslmode": "require",
        }  # fmt: skip

    def test_no_password_sets_nothing_and_socket_hosts_survive(self) -> None:
        conninfo, env = pg_tools.connection_args("postgresql://postgres:@/cpn?host=/run/pg%20sock")
        assert env == {}
        assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
            "user": "postgres",
            "dbname": "cpn",
            "host": "/run/pg sock",
        }


class TestNewerDumps:
    def test_unknown_preamble_settings_are_dropped_and_data_untouched(self) -> None:
        dump = [
            b"SET statement_timeout = 0;\n",
            b"SET transaction_timeout = 0;\n",
            b"COPY public.users (id, notes) FROM stdin;\n",
            b"SET transaction_timeout = 0;\n",  # a row's text, not a setting
            b"\\.\n",
        ]
        kept = list(pg_tools.without_unknown_settings(dump, frozenset({"statement_timeout"})))
        assert kept == [dump[0], *dump[2:]]

    def test_a_dump_from_a_newer_pg_dump_loads_into_the_older_server(
        self, test_servers: TestServers, tmp_path: Path
    ) -> None:
        source = test_servers.new_database()
        fill(source)
        with psycopg.connect(libpq_url(source)) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
        assert row is not None
        server_major = int(row[0]) // 10000
        newer = [
            ClientTool(path, major)
            for path in pg_tools.candidate_paths("pg_dump")
            if (major := pg_tools.tool_major(path) or 0) > server_major
        ]
        if not newer:
            pytest.skip(f"no pg_dump newer than this PostgreSQL {server_major} here")
        dump = backup(source, tmp_path, pg_dump=newer[0])
        assert "transaction_timeout" in dump.read_text()  # what an older server rejects

        unfiltered = test_servers.new_database()
        psql = find_tool("psql", int(row[0]))
        plain = subprocess.run(
            [str(psql.path), "--dbname", libpq_url(unfiltered), "--set=ON_ERROR_STOP=1",
             "--single-transaction", "--file", str(dump)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if server_major < 17:
            assert plain.returncode != 0
            assert "transaction_timeout" in plain.stderr

        target = test_servers.new_database()
        restore(target, dump)
        assert snapshot(target) == snapshot(source)
