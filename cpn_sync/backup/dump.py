"""Back up the user data with `pg_dump`, as the seed's script does.

A backup is a plain-SQL, data-only dump of the six user tables and the tombstones of deleted
users (`deleted_users`, so that a restore keeps them deleted): `COPY` blocks in foreign-key
order, then `setval` for their sequences; generated columns are left out (the server computes
them again on load). The schema is not in it: `cpn_sync.backup.restore` loads it into a
database that `cpn-sync migrate` created, so Alembic stays the one owner of the schema.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click
import psycopg
from psycopg import sql

from cpn_sync.backup.pg_tools import (
    ClientTool,
    ClientToolError,
    connection_args,
    find_tool,
    full_conninfo,
)
from cpn_sync.backup.progress import ByteProgress
from cpn_sync.logs import get_logger
from cpn_sync.settings import SettingsError, get_settings
from db.models import SEED_TABLES

BACKUP_TABLES = SEED_TABLES
# Dumped beside the user tables; a restore merges them with the target's own (restore.py).
TOMBSTONE_TABLE = "deleted_users"
FILENAME_FORMAT = "user_data_backup_%Y%m%d_%H%M%S.sql"

log = get_logger(__name__)


class BackupError(RuntimeError):
    """A backup or restore that could not be done; nothing was written."""


class SchemaMissingError(BackupError):
    def __init__(self, tables: Iterable[str]) -> None:
        self.tables = sorted(tables)
        super().__init__(
            f"tables missing: {', '.join(self.tables)}; "
            "run `cpn-sync migrate` on this database first"
        )


class ToolFailedError(BackupError):
    def __init__(self, tool: ClientTool, returncode: int, errors: str, hint: str = "") -> None:
        self.tool = tool
        self.returncode = returncode
        super().__init__(f"{tool.path} exited with status {returncode}: {errors}{hint}")


@dataclass(frozen=True)
class Database:
    """What a backup or restore needs to know about the server before it starts."""

    version_num: int
    schema: str
    row_counts: dict[str, int]
    settings: frozenset[str]

    def table(self, name: str) -> sql.Composed:
        return qualified(self.schema, name)


def qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL(".").join([sql.Identifier(schema), sql.Identifier(table)])


def inspect_database(database_url: str) -> Database:
    with psycopg.connect(full_conninfo(database_url)) as conn:
        version = int(_one(conn, sql.SQL("SHOW server_version_num")))
        schema = str(_one(conn, sql.SQL("SELECT current_schema()")))
        present = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
        missing = {*BACKUP_TABLES, TOMBSTONE_TABLE} - present
        if missing:
            raise SchemaMissingError(missing)
        counts = {
            table: int(
                _one(conn, sql.SQL("SELECT count(*) FROM {}").format(qualified(schema, table)))
            )
            for table in BACKUP_TABLES
        }
        names = frozenset(row[0] for row in conn.execute("SELECT name FROM pg_settings"))
    return Database(version, schema, counts, names)


def _one(conn: psycopg.Connection[Any], query: sql.SQL | sql.Composed) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def backup(
    database_url: str,
    out_dir: Path,
    *,
    now: dt.datetime | None = None,
    pg_dump: ClientTool | None = None,
) -> Path:
    """Dump the user tables into `out_dir/user_data_backup_<UTC time>.sql` (mode 0600)."""
    database = inspect_database(database_url)
    tool = pg_dump or find_tool("pg_dump", database.version_num)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime(FILENAME_FORMAT)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / stamp
    if target.exists():
        raise BackupError(f"{target} already exists")
    partial = out_dir / f".{stamp}.partial"
    conninfo, password_env = connection_args(database_url)
    args = [str(tool.path), "--dbname", conninfo, "--data-only", "--no-owner", "--no-privileges"]
    args += [f"--table={database.schema}.{table}" for table in (*BACKUP_TABLES, TOMBSTONE_TABLE)]
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, tempfile.TemporaryFile() as errors:
            child = subprocess.Popen(
                args, stdout=out, stderr=errors, env={**os.environ, **password_env}
            )
            progress = ByteProgress("written")
            while child.poll() is None:
                progress.update(os.fstat(out.fileno()).st_size)
                time.sleep(0.1)
            progress.update(os.fstat(out.fileno()).st_size)
            progress.finish()
            if child.returncode != 0:
                raise ToolFailedError(tool, child.returncode, error_lines(errors))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    log.info(
        "backup.created", file=str(target), server_version_num=database.version_num,
        pg_dump=str(tool.path), pg_dump_major=tool.major,
    )  # fmt: skip
    return target


def error_lines(errors: IO[bytes]) -> str:
    """The tool's messages without the values they quote: PostgreSQL's DETAIL lines and the tail
    after `: "` (`invalid input syntax for type inet: "…"`, `COPY users, line 3: "…"`) echo row
    data, which must not reach a terminal log; the table, line and column stay."""
    errors.seek(0)
    kept = []
    for line in errors.read().decode(errors="replace").splitlines():
        if "DETAIL:" not in line and line.strip():
            kept.append(line.split(': "', 1)[0].strip())
    return "; ".join(kept) or "(no message)"


@click.command("backup")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the backup file (created when missing).",
)
def backup_command(out_dir: Path) -> None:
    """Dump the user tables and tombstones of $DATABASE_URL to a timestamped plain-SQL file."""
    try:
        path = backup(get_settings().require_database_url(), out_dir)
    except (BackupError, ClientToolError, SettingsError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Backup created: {path}")
