"""`cpn-sync clerk reconcile`: the whole `users` table compared with Clerk, and repaired.

Set-based on the database's side. The walk writes every page as the backfill does (one
statement per page says which users were missing and which stale, and repairs them) and puts
Clerk's ids with their `updated_at` into a temporary table; one comparison at the end finds the
stored users Clerk did not list. A list's silence is not proof (a user may have signed up after
the walk passed): each of those is asked for by id, and only a `404` erases it, exactly as
`user.deleted` does (tombstone included). Far more users missing than a key of this instance
could explain stops the run before anything is erased (a key of another instance lists other
users): `max_erasures` raises the bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection, text

from cpn_sync.logs import get_logger
from workers.clerk import sync_state
from workers.clerk.api import ClerkClient
from workers.clerk.one_user import settle_held, sync_user
from workers.clerk.snapshots import AppliedSnapshot, apply_page
from workers.clerk.walks import Progress, Report, one_run
from workers.core.engine import get_engine
from workers.core.unit_of_work import unit_of_work

log = get_logger(__name__)
JOB: Final = "reconcile"
# With no explicit bound, erase at most this share of the stored users (and at least 100).
ERASE_SHARE = 0.1
MIN_ERASE_BOUND = 100

_CREATE_SEEN = text(
    "CREATE TEMPORARY TABLE clerk_seen (clerk_id text PRIMARY KEY, updated_at timestamptz) "
    "ON COMMIT PRESERVE ROWS"
)
_ADD_SEEN = text(
    "INSERT INTO clerk_seen SELECT s.clerk_id, to_timestamp(s.ms / 1000.0) "
    "FROM unnest(CAST(:ids AS text[]), CAST(:updated_ms AS bigint[])) AS s(clerk_id, ms) "
    "ON CONFLICT (clerk_id) DO UPDATE SET updated_at = excluded.updated_at"
)
_UNLISTED = text(
    "SELECT u.clerk_id FROM users u "
    "WHERE NOT EXISTS (SELECT 1 FROM clerk_seen s WHERE s.clerk_id = u.clerk_id) "
    "ORDER BY u.clerk_id"
)
_STORED = text("SELECT count(*) FROM users")


class TooManyMissingError(Exception):
    """More stored users are missing from Clerk than the bound allows: nothing was erased."""

    def __init__(self, missing: int, bound: int) -> None:
        super().__init__(
            f"{missing} stored users are not in Clerk's list, more than the {bound} this run may "
            "erase: check that CLERK_SECRET_KEY is this instance's key, then rerun with "
            "--max-erasures to allow it"
        )
        self.missing = missing
        self.bound = bound


def reconcile(
    client: ClerkClient,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    max_erasures: int | None = None,
) -> Report:
    """Compare and repair; `dry_run` finds the same drift and writes nothing. The report's
    counts name the drift by kind: `missing` (created), `stale` (updated), `extra` (erased)."""
    report = Report(JOB, dry_run=dry_run)
    with one_run(JOB), get_engine().connect() as seen:
        seen.execute(_CREATE_SEEN)
        seen.commit()
        if not dry_run:
            with unit_of_work() as work:
                sync_state.started(work.session, JOB)
        held: list[dict[str, Any]] = []
        for page in client.list_users():
            _add_seen(seen, page.users)
            with unit_of_work() as work:
                outcome = apply_page(work, page.users, dry_run=dry_run)
            held += report.take(page.users, outcome, progress)
        unlisted = list(seen.execute(_UNLISTED).scalars())
        stored = int(seen.execute(_STORED).scalar_one())
        seen.execute(text("DROP TABLE clerk_seen"))
        seen.commit()
    bound = max_erasures if max_erasures is not None else _default_bound(stored)
    if len(unlisted) > bound:
        raise TooManyMissingError(len(unlisted), bound)
    if dry_run:
        report.counts["held"] += len(held)
        report.counts["erased"] += sum(client.get_user(clerk_id) is None for clerk_id in unlisted)
    else:
        if held:
            report.add(settle_held(client, held))
        report.add(_confirm(client, unlisted))
    report.counts.update(drift(report))
    if not dry_run:
        with unit_of_work() as work:
            sync_state.succeeded(work.session, JOB, report.summary())
    log.info("clerk_sync.finished", walk=JOB, dry_run=dry_run, **report.summary())
    return report


def drift(report: Report) -> dict[str, int]:
    """The drift by kind, as `cpn_clerk_drift_users{kind}` reports it."""
    counts = report.counts
    return {"missing": counts["created"], "stale": counts["updated"], "extra": counts["erased"]}


def _add_seen(seen: Connection, users: Sequence[dict[str, Any]]) -> None:
    ids = [user.get("id") for user in users]
    updated = [user.get("updated_at") for user in users]
    seen.execute(_ADD_SEEN, {"ids": ids, "updated_ms": updated})
    seen.commit()


def _default_bound(stored: int) -> int:
    return max(MIN_ERASE_BOUND, int(stored * ERASE_SHARE))


def _confirm(client: ClerkClient, unlisted: list[str]) -> list[AppliedSnapshot]:
    """Ask Clerk for each unlisted user: erased on 404, else applied (it came after the walk)."""
    return [sync_user(client, clerk_id) for clerk_id in unlisted]
