"""Restore a backup into an empty database that `cpn-sync migrate` created, in one transaction,
and answer the seed's verification query (total users, users with a clerk id, latest user).

The load runs under `psql`, as the seed's recovery does, with ON_ERROR_STOP: any error rolls back
everything. psql runs whatever it reads, so the file is checked line by line first (and again
while it streams) against what pg_dump writes (`dump_check.py`).

Tombstones: the backup's `deleted_users` and the target's own are merged, and in the same
transaction every tombstoned user's restored rows are erased as `user.deleted` erases them
(the user, by cascade its profile, interactions, results and sessions, and its
`data_migrations`): a user erased after the backup was taken does not come back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import psycopg
from psycopg import sql

from cpn_sync.backup.dump import (
    BACKUP_TABLES,
    TOMBSTONE_TABLE,
    BackupError,
    Database,
    ToolFailedError,
    error_lines,
    inspect_database,
)
from cpn_sync.backup.dump_check import DumpRefusedError, check_dump, checked_lines
from cpn_sync.backup.pg_tools import (
    ClientTool,
    ClientToolError,
    connection_args,
    find_tool,
    full_conninfo,
    newer_dump_hint,
    without_unknown_settings,
)
from cpn_sync.backup.progress import ByteProgress
from cpn_sync.logs import get_logger
from cpn_sync.settings import SettingsError, get_settings

DUMP_MARKER = b"-- PostgreSQL database dump"
LOADED_TABLES = frozenset({*BACKUP_TABLES, TOMBSTONE_TABLE})
# The target's tombstones, set aside while the backup's load, merged back after it.
_KEPT = sql.Identifier("pg_temp", "cpn_restore_kept_tombstones")

log = get_logger(__name__)


class RestoreRefusedError(BackupError):
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = {table: n for table, n in counts.items() if n}
        held = ", ".join(f"{table}: {n}" for table, n in self.counts.items())
        super().__init__(
            f"restore refused: the database already holds rows ({held}); restore only into an "
            "empty database created with `cpn-sync migrate`"
        )


@dataclass(frozen=True)
class Verification:
    """The seed's verification query, plus the row count of every restored table."""

    total_users: int
    users_with_clerk_id: int
    latest_user: dt.datetime | None
    row_counts: dict[str, int]
    tombstones: int = 0


def restore(database_url: str, dump_file: Path, *, psql: ClientTool | None = None) -> Verification:
    """Load a backup into an empty, migrated database in one transaction; answer what it holds."""
    with dump_file.open("rb") as head:
        if DUMP_MARKER not in head.read(4096):
            raise BackupError(f"{dump_file} is not a plain-SQL pg_dump file")
    check_dump(dump_file, LOADED_TABLES)
    database = inspect_database(database_url)
    if any(database.row_counts.values()):
        raise RestoreRefusedError(database.row_counts)
    tool = psql or find_tool("psql", database.version_num)
    conninfo, password_env = connection_args(database_url)
    args = [str(tool.path), "--dbname", conninfo, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1"]
    args += ["--single-transaction", "--command", _load_guard(database), "--file", "-"]
    args += ["--command", _apply_tombstones(database)]
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
            env={**os.environ, **password_env},
        )  # fmt: skip
        assert child.stdin is not None
        progress = ByteProgress("loaded", dump_file.stat().st_size)
        try:
            with dump_file.open("rb") as source:
                lines = progress.counted(checked_lines(dump_file, source, LOADED_TABLES))
                child.stdin.writelines(without_unknown_settings(lines, database.settings))
            progress.finish()
        except BrokenPipeError:
            pass  # psql stopped at an error; its status and messages say which
        except DumpRefusedError:  # the file changed since it was checked: load nothing
            child.kill()
            child.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):  # psql stopped (or was stopped)
                child.stdin.close()
        if child.wait() != 0:
            hint = newer_dump_hint(dump_file, database.version_num)
            raise ToolFailedError(tool, child.returncode, error_lines(errors), hint)
    verification = verify(database_url)
    log.info("backup.restored", file=str(dump_file), psql=str(tool.path), **verification.row_counts)
    return verification


def _load_guard(database: Database) -> str:
    """Lock the tables and check them again inside the load's transaction, so that rows written
    after the first check can never mix with the restored ones."""
    tables = [database.table(name) for name in BACKUP_TABLES]
    tombstones = database.table(TOMBSTONE_TABLE)
    any_row = sql.SQL(" OR ").join(sql.SQL("EXISTS (SELECT FROM {})").format(t) for t in tables)
    return (
        sql.SQL(
            "LOCK TABLE {}, {} IN ACCESS EXCLUSIVE MODE; DO $guard$ BEGIN IF {} THEN RAISE "
            "EXCEPTION 'restore refused: the database is no longer empty'; END IF; END $guard$; "
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT * FROM {}; DELETE FROM {};"
        )
        .format(sql.SQL(", ").join(tables), tombstones, any_row, _KEPT, tombstones, tombstones)
        .as_string()
    )


def _apply_tombstones(database: Database) -> str:
    """After the load, in its transaction: merge the target's tombstones back (the earliest
    deletion time wins) and erase the restored rows of every tombstoned user."""
    return (
        sql.SQL(
            "INSERT INTO {tombstones} AS kept SELECT * FROM {kept} ON CONFLICT (clerk_id) DO "
            "UPDATE SET deleted_at = LEAST(kept.deleted_at, EXCLUDED.deleted_at); "
            "DELETE FROM {migrations} WHERE clerk_id IN (SELECT clerk_id FROM {tombstones}) "
            "OR user_id IN (SELECT u.id FROM {users} u JOIN {tombstones} t USING (clerk_id)); "
            "DELETE FROM {users} WHERE clerk_id IN (SELECT clerk_id FROM {tombstones});"
        )
        .format(
            tombstones=database.table(TOMBSTONE_TABLE),
            kept=_KEPT,
            migrations=database.table("data_migrations"),
            users=database.table("users"),
        )
        .as_string()
    )


def verify(database_url: str) -> Verification:
    """The seed's post-restore check: total users, users with a clerk id, the latest user."""
    database = inspect_database(database_url)
    with psycopg.connect(full_conninfo(database_url)) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT COUNT(*), COUNT(CASE WHEN clerk_id IS NOT NULL THEN 1 END),"
                " MAX(created_at), (SELECT COUNT(*) FROM {}) FROM {}"
            ).format(database.table(TOMBSTONE_TABLE), database.table("users"))
        ).fetchone()
    assert row is not None
    return Verification(int(row[0]), int(row[1]), row[2], database.row_counts, int(row[3]))


@click.command("restore")
@click.argument("dump_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(dump_file: Path) -> None:
    """Load a backup into the empty, migrated database at $DATABASE_URL."""
    try:
        result = restore(get_settings().require_database_url(), dump_file)
    except (BackupError, ClientToolError, SettingsError) as error:
        raise click.ClickException(str(error)) from error
    for table, count in result.row_counts.items():
        click.echo(f"{table:<18} {count} rows")
    click.echo(f"{TOMBSTONE_TABLE:<18} {result.tombstones} tombstones")
    click.echo(
        f"total_users={result.total_users} users_with_clerk_id={result.users_with_clerk_id} "
        f"latest_user={result.latest_user.isoformat() if result.latest_user else '-'}"
    )
