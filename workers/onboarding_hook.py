"""The session-data migration as a `user.created` hook (`workers.hooks.ONBOARDING_HOOKS`).

Invalid onboarding data must not fail the event: the user is still created and the migration
is recorded as `failed` (`migrate_session_data` does that and returns). Only an unforeseen
error propagates, and then the whole event fails and can be replayed.
"""

from __future__ import annotations

from typing import Any

from cpn_sync.celery_config import CPN_RECOMPUTE_USER
from workers.clerk_payloads import ClerkUser
from workers.handlers.context import EventContext
from workers.session_migration import migrate_session_data


def migrate_onboarding(ctx: EventContext, user_id: int, user: ClerkUser, onboarding: Any) -> None:
    """Migrate in the event's transaction; once it commits, ask for the user's CPN figures."""
    outcome = migrate_session_data(
        ctx.session, clerk_id=user.id, user_id=user_id, onboarding=onboarding
    )
    if outcome.status == "completed":
        ctx.after_commit(CPN_RECOMPUTE_USER, [user_id])
