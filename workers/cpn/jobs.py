"""What the CPN tasks do, free of Celery: one chunk per transaction, and the scheduled jobs.

Each function is a transaction boundary: it opens its own sessions and commits. The scheduled
jobs run under the one schedule guard (`workers.core.schedule`), applied by their tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cpn_sync.logs import get_logger
from cpn_sync.settings import Settings
from db.cpn.queries import dirty_user_id_pages, user_id_chunks
from db.cpn.recommendations import Thresholds
from db.cpn.recompute import RecomputeOutcome, recompute_users
from db.cpn.share import rotate_share_tokens

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


def _logged(job: str, outcome: JobOutcome) -> JobOutcome:
    log.info(
        "cpn.job_done", job=job, chunks=outcome.chunks, users=outcome.users,
        written=outcome.written,
    )  # fmt: skip
    return outcome


def scan_dirty(engine: Engine, options: CpnOptions) -> JobOutcome:
    """Recompute every user whose interactions changed (insert, update or delete) since a
    recompute last saw them, chunk by chunk, inline (under the schedule guard, a second beat
    that fires meanwhile skips, and one that fires later finds the changes already consumed)."""
    outcome = JobOutcome()
    for page in dirty_user_id_pages(engine, options.chunk_size):
        chunk = recompute_chunk(engine, page, options)
        outcome.chunks += 1
        outcome.users += len(page)
        outcome.written += len(chunk.written)
        outcome.out_of_range += chunk.out_of_range
    return _logged("scan_dirty", outcome)


def fan_out_all(
    engine: Engine, options: CpnOptions, enqueue: Callable[[list[int]], object]
) -> JobOutcome:
    """Read every user id and hand each chunk to `enqueue` (a `cpn.recompute_chunk`)."""
    outcome = JobOutcome()
    for page in user_id_chunks(engine, options.chunk_size):
        enqueue(page)
        outcome.chunks += 1
        outcome.users += len(page)
    return _logged("recompute_all", outcome)


def revoke_share_links(engine: Engine, user_id: int, public_base_url: str) -> int:
    """Rotate the share tokens of every result of the user in one transaction: the links they
    shared answer 404 from the commit on. Answers how many results got a new link."""
    with Session(engine) as session, session.begin():
        rotated = rotate_share_tokens(session, user_id, public_base_url)
    log.info("cpn.share_revoked", user_id=user_id, results=rotated)
    return rotated
