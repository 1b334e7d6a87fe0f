"""What the CPN tasks do, free of Celery: one chunk per transaction, and the scheduled jobs.

Each function is a transaction boundary: it opens its own sessions and commits. The scheduled
jobs run under an advisory lock and skip (returning `ran=False`) when another process holds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cpn_sync.logs import get_logger
from cpn_sync.settings import Settings
from db.advisory import lock_key, try_advisory_lock
from db.cpn.queries import dirty_user_id_pages, user_id_chunks
from db.cpn.recommendations import Thresholds
from db.cpn.recompute import RecomputeOutcome, recompute_users

SCAN_DIRTY_LOCK = lock_key("cpnscan")
RECOMPUTE_ALL_LOCK = lock_key("cpnall")

log = get_logger("workers.cpn")


@dataclass(frozen=True)
class CpnOptions:
    limits: Thresholds
    public_base_url: str
    chunk_size: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CpnOptions:
        return cls(
            limits=Thresholds(
                min_interactions=settings.cpn_min_interactions,
                cost_per_nut=settings.cpn_cost_per_nut_threshold,
                nuts_per_hour=settings.cpn_nuts_per_hour_threshold,
                weekday_min_interactions=settings.cpn_weekday_min_interactions,
            ),
            public_base_url=settings.public_base_url,
            chunk_size=settings.cpn_chunk_size,
        )


@dataclass
class JobOutcome:
    ran: bool
    chunks: int = 0
    users: int = 0
    written: int = 0
    out_of_range: list[int] = field(default_factory=list)


def recompute_chunk(
    engine: Engine, user_ids: Sequence[int], options: CpnOptions
) -> RecomputeOutcome:
    """Recompute one chunk of users in one transaction."""
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        outcome = recompute_users(
            session, user_ids, limits=options.limits, public_base_url=options.public_base_url
        )
    if outcome.out_of_range:
        log.error("cpn.figures_out_of_range", user_ids=outcome.out_of_range)
    log.info(
        "cpn.chunk_recomputed",
        users=len(user_ids),
        written=len(outcome.written),
        seconds=round(time.perf_counter() - started, 3),
    )
    return outcome


def _exclusively(
    engine: Engine, lock: int, job: str, work: Callable[[JobOutcome], None]
) -> JobOutcome:
    """Run a scheduled job under its advisory lock, or skip it when another process holds it."""
    with try_advisory_lock(engine, lock) as held:
        if not held:
            log.info("cpn.job_skipped", job=job, reason="lock_held")
            return JobOutcome(ran=False)
        outcome = JobOutcome(ran=True)
        work(outcome)
    log.info(
        "cpn.job_done", job=job, chunks=outcome.chunks, users=outcome.users,
        written=outcome.written,
    )  # fmt: skip
    return outcome


def scan_dirty(engine: Engine, options: CpnOptions) -> JobOutcome:
    """Recompute every user whose interactions changed (insert, update or delete) since a
    recompute last saw them, chunk by chunk, inline under the scan's lock: a second beat that
    fires meanwhile skips, and one that fires later finds the changes already consumed."""

    def work(outcome: JobOutcome) -> None:
        for page in dirty_user_id_pages(engine, options.chunk_size):
            chunk = recompute_chunk(engine, page, options)
            outcome.chunks += 1
            outcome.users += len(page)
            outcome.written += len(chunk.written)
            outcome.out_of_range += chunk.out_of_range

    return _exclusively(engine, SCAN_DIRTY_LOCK, "scan_dirty", work)


def fan_out_all(
    engine: Engine, options: CpnOptions, enqueue: Callable[[list[int]], object]
) -> JobOutcome:
    """Read every user id and hand each chunk to `enqueue` (a `cpn.recompute_chunk`)."""

    def work(outcome: JobOutcome) -> None:
        for page in user_id_chunks(engine, options.chunk_size):
            enqueue(page)
            outcome.chunks += 1
            outcome.users += len(page)

    return _exclusively(engine, RECOMPUTE_ALL_LOCK, "recompute_all", work)
