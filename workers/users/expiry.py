"""Session expiry (`maintenance.expire_sessions`, on beat): sessions past `expires_at` end.
Under the schedule guard (`workers.core.schedule`)."""

from __future__ import annotations

from sqlalchemy import func, true, update

from cpn_sync.task_contract import EXPIRE_SESSIONS
from db.models import UserSession
from workers.core.schedule import scheduled_job
from workers.core.unit_of_work import Publish, UnitOfWork


@scheduled_job(EXPIRE_SESSIONS, lambda settings: settings.session_expiry_interval_seconds)
def expire_sessions(work: UnitOfWork, _publish: Publish) -> dict[str, int]:
    """Sessions past `expires_at` become inactive and ended (at their expiry, clamped)."""
    result = work.session.execute(
        update(UserSession)
        .where(UserSession.is_active == true(), UserSession.expires_at <= func.now())
        .values(
            is_active=False,
            ended_at=func.coalesce(
                UserSession.ended_at,
                func.greatest(UserSession.expires_at, UserSession.last_active_at),
            ),
        )
        .returning(UserSession.id)
    )
    return {"expired": len(result.all())}
