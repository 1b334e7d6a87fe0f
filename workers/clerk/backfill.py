"""`cpn-sync clerk backfill`: every Clerk user, page by page, through the versioned upsert.

The cursor (the last user id of the last committed page) is saved in the transaction that
wrote the page, so an interrupted backfill resumes after the last page it wrote and never
skips one; a finished backfill clears it, and the next run walks everything again. The next
page is fetched while this one is written (`ClerkClient.list_users`). Users whose address
another stored user holds are tried again after the walk (`one_user.settle_held`).
"""

from __future__ import annotations

from typing import Any, Final

from cpn_sync.logs import get_logger
from workers.clerk import sync_state
from workers.clerk.api import ClerkClient
from workers.clerk.one_user import settle_held
from workers.clerk.snapshots import apply_page
from workers.clerk.walks import Progress, Report, one_run
from workers.core.unit_of_work import unit_of_work

log = get_logger(__name__)
JOB: Final = "backfill"


def backfill(
    client: ClerkClient, *, dry_run: bool = False, progress: Progress | None = None
) -> Report:
    """Walk every user; `dry_run` reports what would change and writes nothing."""
    with one_run(JOB):
        with unit_of_work() as work:
            state = sync_state.read(work.session, JOB)
            cursor = state.cursor if state is not None else None
            if not dry_run:
                sync_state.started(work.session, JOB)
        report = Report(JOB, dry_run=dry_run, resumed_after=cursor)
        log.info("clerk_sync.started", walk=JOB, resumed=cursor is not None, dry_run=dry_run)
        held: list[dict[str, Any]] = []
        for page in client.list_users(starting_after=cursor):
            with unit_of_work() as work:
                outcome = apply_page(work, page.users, dry_run=dry_run)
                if not dry_run:
                    sync_state.save_cursor(work.session, JOB, page.cursor)
            held += report.take(page.users, outcome, progress)
        if dry_run:
            report.counts["held"] += len(held)
        elif held:
            report.add(settle_held(client, held))
        if not dry_run:
            with unit_of_work() as work:
                sync_state.succeeded(work.session, JOB, report.summary())
        log.info("clerk_sync.finished", walk=JOB, dry_run=dry_run, **report.summary())
        return report
