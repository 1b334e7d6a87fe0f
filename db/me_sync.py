"""First-request sync requests (`POST /api/me/sync`, DESIGN.md section 10), one row per
`(clerk_id, session_data_id)`: stored by the web before anything else, worked by the
`webhooks.sync_me` task, read back by the waiting request.

`requested` counts the calls that asked for this row's work, `applied` how many of them the
last finished run covered: the call numbered `n` has its answer once `applied >= n`.
`completed_by` is the number of the call whose run completed the onboarding migration, so
that call says `completed` and every other one `already_completed`. `onboarding` (the
browser's session-storage data, personal) is erased as soon as a run has used it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base

NO_ONBOARDING = ""  # the session_data_id of a call without onboarding data


class MeSyncRequest(Base):
    __tablename__ = "me_sync_requests"
    __table_args__ = (
        UniqueConstraint("clerk_id", "session_data_id", name="unique_me_sync_request"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    clerk_id: Mapped[str] = mapped_column(String(255))
    session_data_id: Mapped[str] = mapped_column(String(255))
    onboarding: Mapped[Any | None] = mapped_column(JSONB)
    requested: Mapped[int] = mapped_column(Integer, server_default="1")
    applied: Mapped[int] = mapped_column(Integer, server_default="0")
    completed_by: Mapped[int | None] = mapped_column(Integer)
    # The last run's outcome: done, deleted, unknown_user, user_failed, waiting, clerk_unavailable.
    outcome: Mapped[str | None] = mapped_column(String(20))
    # completed, skipped, failed or none (the run's onboarding migration).
    onboarding_status: Mapped[str | None] = mapped_column(String(20))
    errors: Mapped[Any | None] = mapped_column(JSONB)
    detail: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    requested_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    applied_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
