"""`cpn-sync migrate` as an operator (or the Procfile's release line) runs it: a real process of
the console script, configured by DATABASE_URL alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cpn_sync.settings import libpq_url
from db.migrate import MIGRATION_LOCK_KEY, head_revision
from tests.db import catalog
from tests.services import TestServers

CLI = str(Path(sys.executable).parent / "cpn-sync")
FIRST_STEP = "Running upgrade  -> 0001"


def migrate_command(database_url: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "INFO"}
    return [CLI, "migrate"], env


def run_migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    command, env = migrate_command(database_url)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def versions(database_url: str) -> list[str]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return [str(row[0]) for row in conn.execute("SELECT version_num FROM alembic_version")]


def schema(database_url: str) -> catalog.Snapshot:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return catalog.snapshot(conn, catalog.user_tables(conn))


def test_a_second_migrate_changes_nothing(test_servers: TestServers) -> None:
    url = test_servers.new_database(migrate=False)

    first = run_migrate(url)
    after_first = schema(url)
    second = run_migrate(url)

    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout == f"database at revision {head_revision()}\n"
    assert FIRST_STEP in first.stderr
    assert second.returncode == 0, second.stderr
    assert "Running upgrade" not in second.stderr
    assert schema(url) == after_first
    assert versions(url) == [head_revision()]


def _waiting_for_the_lock(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND ((classid::bigint << 32) | objid::bigint) = %s",
        (MIGRATION_LOCK_KEY,),
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_three_concurrent_migrates_all_succeed_one_after_another(
    test_servers: TestServers,
) -> None:
    """The test holds the migration lock while three processes start, so that all three are
    queued on it at once (which proves they take it), then lets them race."""
    url = test_servers.new_database(migrate=False)
    with psycopg.connect(libpq_url(url), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        command, env = migrate_command(url)
        processes = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        try:
            deadline = time.monotonic() + 90
            while _waiting_for_the_lock(holder) < 3:
                exited = [p.args for p in processes if p.poll() is not None]
                assert not exited, "a migrate finished without waiting for the lock"
                assert time.monotonic() < deadline, "the migrates never queued on the lock"
                time.sleep(0.2)
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            outputs = [process.communicate(timeout=120) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()

    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    stderrs = [stderr.decode() for _stdout, stderr in outputs]
    assert sum(FIRST_STEP in stderr for stderr in stderrs) == 1
    assert versions(url) == [head_revision()]


@pytest.mark.parametrize("scheme", ["postgresql://", "postgresql+psycopg://", "postgres://"])
def test_every_accepted_url_form_migrates(test_servers: TestServers, scheme: str) -> None:
    url = test_servers.new_database(migrate=False)
    given = scheme + url.split("://", 1)[1]

    result = run_migrate(given)

    assert result.returncode == 0, result.stderr
    assert versions(url) == [head_revision()]
