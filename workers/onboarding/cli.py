"""`cpn-sync onboarding` (alias `sessions`): import, roll back and list onboarding data
migrations.

Output names ids, statuses, counts and rule failures; never a name, an email or a note.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cpn_sync import logs
from cpn_sync.settings import get_settings
from db.models import DataMigration
from workers.core.commands import command_engine, utc_text

MIGRATION_STATUSES = ("pending", "completed", "failed", "rolled_back")


@contextmanager
def _session() -> Iterator[Session]:
    with command_engine() as engine, Session(engine, expire_on_commit=False) as session:
        yield session


def _warn_unsent(unsent: int) -> None:
    if unsent:
        click.echo(
            f"warning: the broker is unreachable; {unsent} CPN recompute request(s) not sent "
            "(the CPN dirty scan will pick those users up)",
            err=True,
        )


@click.group()
def onboarding() -> None:
    """Onboarding data migrations: the data browsers kept in session storage before sign-up."""


@onboarding.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(file: Path) -> None:
    """Migrate a JSON Lines export: one {"clerk_id", "email", "sessionData"} object a line.

    Each line commits on its own; bad lines are reported and skipped. Exit status 1 when any
    line failed.
    """
    from workers.cpn.requests import RecomputeRequests
    from workers.onboarding.import_file import ImportAborted, import_lines

    # The report tells the operator about every line; per-line INFO logs would only bury it.
    settings = get_settings()
    if logging.getLevelNamesMapping().get(settings.log_level, logging.INFO) == logging.INFO:
        logs.configure("WARNING", settings.log_format)
    recompute = RecomputeRequests()
    with file.open("rb") as counting:
        total = sum(1 for _ in counting)
    with (
        _session() as session,
        file.open("rb") as lines,
        click.progressbar(length=total, label="importing", file=sys.stderr) as bar,
    ):

        def numbered() -> Iterator[tuple[int, bytes]]:
            for number, line in enumerate(lines, start=1):
                yield number, line
                bar.update(1)

        try:
            report = import_lines(session, numbered(), after_commit=recompute)
        except ImportAborted as aborted:
            _warn_unsent(recompute.unsent)
            raise click.ClickException(
                f"{aborted}; the lines before it are committed, run the import again to go on "
                "(lines already done are skipped)"
            ) from aborted
    click.echo(f"migrated: {report.migrated}")
    click.echo(f"skipped (already done): {report.skipped}")
    click.echo(f"failed: {len(report.failures)}")
    for failure in report.failures:
        click.echo(f"  line {failure.line}: {failure.reason}")
    _warn_unsent(recompute.unsent)
    if report.failures:
        sys.exit(1)


@onboarding.command()
@click.argument("migration_id", type=int)
@click.option("--force", is_flag=True, help="Also undo a profile changed since the migration.")
def rollback(migration_id: int, force: bool) -> None:
    """Undo one completed migration: remove what it wrote, restore what it overwrote."""
    from workers.cpn.requests import RecomputeRequests
    from workers.onboarding.rollback import RollbackError, rollback_migration

    with _session() as session:
        try:
            result = rollback_migration(session, migration_id, force=force)
        except RollbackError as error:
            raise click.ClickException(str(error)) from error
        session.commit()
    recompute = RecomputeRequests()
    if result.user_id is not None:
        recompute(result.user_id)
    gone = (
        f", {result.interactions_already_gone} already gone"
        if result.interactions_already_gone
        else ""
    )
    click.echo(
        f"rolled back migration {migration_id} (user {result.user_id}): "
        f"profile {result.profile}, {result.interactions_deleted} interaction(s) removed{gone}"
    )
    _warn_unsent(recompute.unsent)


@onboarding.command("list")
@click.option("--status", type=click.Choice(MIGRATION_STATUSES), help="Only this status.")
@click.option("--clerk-id", help="Only this Clerk user.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
def list_command(status: str | None, clerk_id: str | None, limit: int) -> None:
    """The newest session-data migrations first."""
    interactions = func.coalesce(
        func.jsonb_array_length(DataMigration.migrated_data["interactions"]), 0
    )
    query: Select[Any] = (
        select(
            DataMigration,
            DataMigration.migrated_data["profile"]["action"].astext.label("profile"),
            interactions.label("interactions"),
        )
        .where(DataMigration.migration_type == "session_to_user")
        .order_by(DataMigration.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(DataMigration.status == status)
    if clerk_id:
        query = query.where(DataMigration.clerk_id == clerk_id)
    with _session() as session:
        rows = session.execute(query).all()
    click.echo(
        f"{'id':>7}  {'user':>7}  {'clerk_id':<32}  {'status':<11}  {'profile':<7}  "
        f"{'inter.':>6}  {'started (UTC)':<19}  {'ended (UTC)':<19}  error"
    )
    for row, profile, count in rows:
        ended = row.rolled_back_at or row.completed_at
        click.echo(
            f"{row.id:>7}  {row.user_id or '-':>7}  {row.clerk_id or '-':<32}  "
            f"{row.status or '-':<11}  {profile or '-':<7}  {count:>6}  "
            f"{utc_text(row.started_at):<19}  {utc_text(ended):<19}  {row.error_message or ''}"
        )
    click.echo(f"{len(rows)} migration(s)")


# `cpn-sync sessions`: the group's former name, kept as an alias for one release.
sessions = click.Group(
    "sessions",
    commands=onboarding.commands,
    help="The former name of `cpn-sync onboarding` (kept for one release).",
)
