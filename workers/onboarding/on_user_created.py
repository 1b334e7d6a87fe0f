"""The session-data migration of a `user.created`, or of a later `user.updated` when that one
failed or never arrived (called by `workers.users.user_events`).

Invalid onboarding data must not fail the event: the user is still created and the migration
is recorded as `failed` (`migrate_session_data` does that and returns). Only an unforeseen
error propagates, and then the whole event fails and can be replayed.
"""

from __future__ import annotations

from typing import Any

from cpn_sync import unstorable
from cpn_sync.clerk import ClerkUser
from cpn_sync.task_contract import CPN_RECOMPUTE_USER
from workers.core.unit_of_work import UnitOfWork
from workers.cpn.requests import request_recompute
from workers.inbox.context import EventContext
from workers.onboarding.data_migration import MigrationOutcome, migrate_session_data
from workers.onboarding.validation import FieldError, read_onboarding

ONBOARDING = "data.unsafe_metadata.onboarding"


def refused_fields(problems: list[dict[str, str]]) -> list[FieldError]:
    """The onboarding fields whose values the web could not store: the migration fails on them
    (a marker in their place must never be migrated as if it were the user's data)."""
    refused = []
    for problem in problems:
        path = problem.get("path", "")
        if unstorable.inside(path, ONBOARDING):
            name = "onboarding" + path.removeprefix(ONBOARDING)
            refused.append(FieldError(name.removeprefix("onboarding."), problem["problem"]))
    return refused


def migrate_onboarding(ctx: EventContext, user_id: int, user: ClerkUser, stored: str) -> None:
    """Migrate in the event's transaction; once it commits, ask for the user's CPN figures.

    `stored` is the JSON text of `unsafe_metadata.onboarding`, decoded here: what cannot be
    read (too deep, a number out of range) fails the migration with the reason, not the event.
    """
    onboarding = read_onboarding(stored)
    if onboarding is not None:
        migrate_user_onboarding(ctx.work, user_id, user.id, onboarding, ctx.unstorable)


def migrate_user_onboarding(
    work: UnitOfWork,
    user_id: int,
    clerk_id: str,
    onboarding: Any,
    unstorable_values: list[dict[str, str]],
) -> MigrationOutcome:
    """The one migration of a user's onboarding, whichever way the user arrived (an event, a
    snapshot from Clerk's API): in the caller's transaction, under the user's lock; once it
    commits, the user's CPN figures are asked for. `unstorable_values`: the problems recorded
    for the user's payload (`cpn_sync.unstorable`), which fail the fields they name."""
    outcome = migrate_session_data(
        work.session,
        clerk_id=clerk_id,
        user_id=user_id,
        onboarding=onboarding,
        refused=refused_fields(unstorable_values),
    )
    if outcome.status == "completed":
        work.after_commit_call(CPN_RECOMPUTE_USER, lambda: request_recompute(user_id))
    return outcome
