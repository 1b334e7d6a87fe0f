"""`cpn-sync clerk ...`: make the database equal to Clerk through its Backend API (DESIGN.md
section 9): `backfill`, `reconcile`, `sync-user`, `sync-recent` (the scheduled job, now) and
`status`.

Every failure is one line and exit status 1: a refused key names CLERK_SECRET_KEY (never its
value), an API that does not answer says so, a database error is described without row values.
The client and the jobs are imported inside the commands: they load prometheus-client and the
Celery app, which `cpn-sync worker` must configure first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from cpn_sync.db_errors import describe_database_error, is_database_error
from cpn_sync.settings import SettingsError, get_settings
from cpn_sync.task_contract import CLERK_BACKFILL

if TYPE_CHECKING:
    from workers.clerk.api import ClerkClient
    from workers.clerk.walks import Progress, Report

RESULT_NAMES = (
    ("created", "created"),
    ("updated", "updated"),
    ("unchanged", "unchanged"),
    ("deleted", "skipped (deleted)"),
    ("failed", "failed"),
)


@click.group()
def clerk() -> None:
    """Converge with Clerk's Backend API (needs CLERK_SECRET_KEY)."""


@contextmanager
def _one_line_errors() -> Iterator[ClerkClient]:
    """A client of the configured instance; every expected failure as one line."""
    from workers.clerk.api import ClerkClient
    from workers.clerk.config import require_config
    from workers.clerk.errors import ClerkAPIError
    from workers.clerk.reconcile import TooManyMissingError
    from workers.clerk.walks import WalkRunningError
    from workers.core.engine import close_engine

    try:
        with ClerkClient(require_config(get_settings())) as client:
            yield client
    except (ClerkAPIError, SettingsError, TooManyMissingError, WalkRunningError) as error:
        raise click.ClickException(str(error)) from None
    except Exception as error:
        if not is_database_error(error):
            raise
        raise click.ClickException(f"database error: {describe_database_error(error)}") from None
    finally:
        close_engine()


@contextmanager
def _progress(client: ClerkClient, label: str) -> Iterator[Progress | None]:
    """A progress bar on a terminal (stderr, so the summary on stdout stays plain)."""
    if not sys.stderr.isatty():
        yield None
        return
    total = client.count_users()
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def _print(report: Report, extra: Callable[[Report], str] | None = None) -> None:
    counts = report.counts
    verb = "would be " if report.dry_run else ""
    where = f", resumed after {report.resumed_after}" if report.resumed_after else ""
    click.echo(
        f"{report.walk}{' (dry run)' if report.dry_run else ''}: {report.users} users in "
        f"{report.pages} page{'' if report.pages == 1 else 's'}{where}"
    )
    click.echo(", ".join(f"{verb}{label} {counts[name]}" for name, label in RESULT_NAMES))
    onboarding = {k.removeprefix("onboarding_"): v for k, v in counts.items() if "onboarding_" in k}
    if onboarding:
        click.echo("onboarding: " + ", ".join(f"{k} {v}" for k, v in sorted(onboarding.items())))
    if counts["held"]:
        click.echo(f"address held by another stored user (settled on a real run): {counts['held']}")
    if extra is not None:
        click.echo(extra(report))
    for clerk_id, reason in report.failures[:20]:
        click.echo(f"  failed {clerk_id}: {reason}")
    if len(report.failures) > 20:
        click.echo(f"  ... and {len(report.failures) - 20} more (each in the log)")


@clerk.command()
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--enqueue", is_flag=True, help="Run it in a worker (queue maintenance) instead.")
def backfill(dry_run: bool, enqueue: bool) -> None:
    """Apply every Clerk user through the versioned upsert; resumes an interrupted run."""
    if enqueue:
        if dry_run:
            raise click.UsageError("--dry-run runs here: it cannot be combined with --enqueue")
        from workers.core.celery_app import app

        result = app.send_task(CLERK_BACKFILL, ignore_result=True)
        click.echo(f"backfill queued (task {result.id}); follow it with: cpn-sync clerk status")
        return
    from workers.clerk.backfill import backfill as run_backfill

    with _one_line_errors() as client, _progress(client, "backfill") as progress:
        report = run_backfill(client, dry_run=dry_run, progress=progress)
    _print(report)


@clerk.command()
@click.option("--dry-run", is_flag=True, help="Report the drift; repair nothing.")
@click.option(
    "--max-erasures",
    type=click.IntRange(min=0),
    help="Erase at most this many users gone from Clerk (default: 10% of the stored, >= 100).",
)
def reconcile(dry_run: bool, max_erasures: int | None) -> None:
    """Compare every stored user with Clerk; repair missing, stale and deleted users."""
    from workers.clerk.reconcile import drift
    from workers.clerk.reconcile import reconcile as run_reconcile

    def drift_line(report: Report) -> str:
        found = drift(report)
        verb = "found" if report.dry_run else "found and repaired"
        return f"drift {verb}: " + ", ".join(f"{kind} {n}" for kind, n in found.items())

    with _one_line_errors() as client, _progress(client, "reconcile") as progress:
        report = run_reconcile(
            client, dry_run=dry_run, progress=progress, max_erasures=max_erasures
        )
    _print(report, drift_line)


@clerk.command("sync-recent")
def sync_recent() -> None:
    """Now, what beat runs every CLERK_SYNC_INTERVAL_SECONDS: the users Clerk changed lately."""
    from workers.clerk.recent import sync_recent as run_sync_recent

    with _one_line_errors() as client:
        report = run_sync_recent(client)
    _print(report)


@clerk.command("sync-user")
@click.argument("user_id")
def sync_user(user_id: str) -> None:
    """Fetch one user from Clerk and apply it (erase it when Clerk answers 404)."""
    from workers.clerk.one_user import sync_user as run_sync_user

    with _one_line_errors() as client:
        applied = run_sync_user(client, user_id)
    line = f"{user_id}: {applied.result}"
    if applied.user_id is not None and applied.result != "erased":
        line += f" (users.id {applied.user_id})"
    if applied.onboarding:
        line += f", onboarding {applied.onboarding}"
    if applied.reason:
        line += f": {applied.reason}"
    click.echo(line)


@clerk.command()
def status() -> None:
    """Each job's last success, its counts, and a backfill's saved cursor."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from db.clerk_sync import ClerkSyncState
    from workers.core.commands import command_engine, utc_text

    with command_engine() as engine, Session(engine) as session:
        rows = {row.job: row for row in session.scalars(select(ClerkSyncState))}
    for job in ("backfill", "sync_recent", "reconcile"):
        row = rows.get(job)
        if row is None:
            click.echo(f"{job}: never ran")
            continue
        counts = ", ".join(f"{k} {v}" for k, v in (row.last_counts or {}).items())
        started, succeeded = utc_text(row.started_at), utc_text(row.last_success_at)
        line = f"{job}: started {started}, last success {succeeded}"
        if row.cursor:
            line += f", resumes after {row.cursor}"
        click.echo(line + (f" ({counts})" if counts else ""))
