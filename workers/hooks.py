"""Extension points: work other features attach to event handling.

`ONBOARDING_HOOKS` is where the session-data migration (DESIGN.md section 4) plugs in: each
hook is called for a `user.created` whose `unsafe_metadata.onboarding` is present, inside the
event's transaction, after the user row is upserted (also when a redelivery finds it already
there, so a hook must be idempotent, e.g. by `(clerk_id, sessionDataId)`). A hook flushes and
never commits; it may call `ctx.after_commit(task_name, args)` to run the work as a follow-up
task instead. An exception it raises fails the event (and rolls back the user upsert with it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workers.clerk_payloads import ClerkUser
from workers.handlers.context import EventContext
from workers.onboarding_hook import migrate_onboarding

# (ctx, users.id, the Clerk user, the onboarding object) -> None
OnboardingHook = Callable[[EventContext, int, ClerkUser, Any], None]

ONBOARDING_HOOKS: list[OnboardingHook] = [migrate_onboarding]
