"""Where each convergence job with Clerk's Backend API stands (DESIGN.md section 9).

One row per job (`backfill`, `sync_recent`, `reconcile`): the backfill's cursor (the last
Clerk user id of the last committed page, so that an interrupted run resumes after it), the
recent sync's watermark (Clerk's `updated_at`, epoch ms), when the job last succeeded and what
it found. The web's `/metrics` reads this table: the jobs run in other processes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class ClerkSyncState(Base):
    __tablename__ = "clerk_sync_state"

    job: Mapped[str] = mapped_column(String(50), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(255))
    watermark_ms: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Counts of the last finished run; the reconcile's include its drift by kind.
    last_counts: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
