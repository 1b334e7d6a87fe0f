"""`clerk.sync_recent`: the users Clerk changed lately, every few minutes, so that a missed
`user.created` or `user.updated` is repaired within minutes rather than at the nightly
reconcile.

Clerk cannot filter users by `updated_at`, only order by it: the walk reads `-updated_at`
pages until a user older than the previous run's watermark less a safety margin (a user
updated while the last walk ran may carry an earlier stamp than the newest one it saw). The
watermark is Clerk's own `updated_at`, never this host's clock; a first run goes back an hour.
"""

from __future__ import annotations

import time
from typing import Any, Final

from cpn_sync.logs import get_logger
from workers.clerk import sync_state
from workers.clerk.api import ClerkClient
from workers.clerk.one_user import settle_held
from workers.clerk.snapshots import apply_page
from workers.clerk.walks import Report, one_run
from workers.core.unit_of_work import unit_of_work

log = get_logger(__name__)
JOB: Final = "sync_recent"
SAFETY_MARGIN_MS = 60_000
FIRST_RUN_MS = 3_600_000


def sync_recent(client: ClerkClient, *, now_ms: int | None = None) -> Report:
    report = Report(JOB)
    with one_run(JOB):
        with unit_of_work() as work:
            state = sync_state.read(work.session, JOB)
            sync_state.started(work.session, JOB)
        watermark = state.watermark_ms if state is not None else None
        if watermark is None:
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            since = now - FIRST_RUN_MS
        else:
            since = watermark - SAFETY_MARGIN_MS
        newest = watermark or since
        held: list[dict[str, Any]] = []
        for page in client.list_users_by_updated(updated_since_ms=since):
            if not page.users:
                continue
            with unit_of_work() as work:
                outcome = apply_page(work, page.users)
            held += report.take(page.users, outcome, None)
            newest = max(newest, *(int(user["updated_at"]) for user in page.users))
        if held:
            report.add(settle_held(client, held))
        with unit_of_work() as work:
            sync_state.succeeded(work.session, JOB, report.summary(), watermark_ms=newest)
    log.info("clerk_sync.finished", walk=JOB, since_ms=since, **report.summary())
    return report
