"""What the walks over Clerk's users share: one run at a time, and the report they print.

A walk spans many transactions (one per page), so the advisory lock that keeps a second run
away is held by a connection of its own for the whole walk, not by a transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cpn_sync.logs import get_logger
from workers.clerk.snapshots import AppliedSnapshot, PageOutcome
from workers.core.engine import get_engine
from workers.core.locks import release_job, try_hold_job

log = get_logger(__name__)

# Called with the number of users a page held, after the page is written.
Progress = Callable[[int], None]
MAX_LISTED_FAILURES = 20


class WalkRunningError(Exception):
    """Another run of the same walk holds its lock (on this or another host)."""

    def __init__(self, walk: str) -> None:
        super().__init__(f"a Clerk {walk} is already running; try again when it has finished")
        self.walk = walk


@contextmanager
def one_run(walk: str) -> Iterator[None]:
    """Hold the walk's lock for the block, or raise WalkRunningError."""
    name = f"clerk.{walk}.walk"
    with get_engine().connect() as connection:
        held = try_hold_job(connection, name)
        connection.commit()
        if not held:
            raise WalkRunningError(walk)
        try:
            yield
        finally:
            release_job(connection, name)
            connection.commit()


@dataclass
class Report:
    """What a walk found and did. `counts` by result (`created`, `updated`, `unchanged`,
    `deleted`: tombstoned and skipped, `failed`, `erased`) and `onboarding_<status>`;
    `failures`: (Clerk id, reason), never personal data."""

    walk: str
    dry_run: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)
    pages: int = 0
    users: int = 0
    resumed_after: str | None = None

    def add(self, applied: list[AppliedSnapshot]) -> None:
        outcome = PageOutcome(applied)
        self.counts.update(outcome.counts)
        for item in applied:
            if item.result == "failed":
                reason = item.reason or "unknown"
                self.failures.append((item.clerk_id, reason))
                log.warning("clerk_sync.user_failed", walk=self.walk, clerk_id=item.clerk_id,
                            reason=reason)  # fmt: skip

    def take(
        self, users: Sequence[dict[str, Any]], outcome: PageOutcome, progress: Progress | None
    ) -> list[dict[str, Any]]:
        """Count a written page; answer its users whose address another stored user held
        (settled after the walk, `one_user.settle_held`)."""
        held = {item.clerk_id for item in outcome.held()}
        self.add([item for item in outcome.applied if item.result != "held"])
        self.pages += bool(users)
        self.users += len(users)
        if progress is not None:
            progress(len(users))
        return [user for user in users if user.get("id") in held]

    def summary(self) -> dict[str, int]:
        """The counts as stored and logged (every result, zeros included)."""
        names = ("created", "updated", "unchanged", "deleted", "failed")
        return {name: self.counts[name] for name in names} | {
            name: count for name, count in self.counts.items() if name not in names
        }
