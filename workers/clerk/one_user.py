"""One user made equal to Clerk: `cpn-sync clerk sync-user`, and the users a walk could not
write because another stored user held their address.

An address is held by a stale row when Clerk moved it from one user to another and the
database missed it (two users exchanging addresses, an account deleted and created again):
syncing the holder from Clerk (updated, or erased when Clerk no longer has it) lets the user go
in. One level only: a chain of holders waits for the next run.
"""

from __future__ import annotations

from typing import Any

from workers.clerk.api import ClerkClient
from workers.clerk.snapshots import HELD, AppliedSnapshot, apply_snapshot
from workers.core.locks import lock_user, lock_users
from workers.core.unit_of_work import unit_of_work
from workers.users.user_events import erase_user, find_user_id, park_address


def sync_user(client: ClerkClient, clerk_id: str, *, settle: bool = True) -> AppliedSnapshot:
    """Fetch the user and apply it; erase it when Clerk answers 404 (`erased`)."""
    user = client.get_user(clerk_id)
    if user is None:
        with unit_of_work() as work:
            lock_user(work.session, clerk_id)
            user_id = find_user_id(work.session, clerk_id)
            erase_user(work, clerk_id)
        return AppliedSnapshot(clerk_id, "erased", user_id)
    with unit_of_work() as work:
        applied = apply_snapshot(work, user)
    if applied.result == "held" and settle:
        return settle_held(client, [user])[0]
    return applied


def settle_held(client: ClerkClient, users: list[dict[str, Any]]) -> list[AppliedSnapshot]:
    """Apply again users whose address was held; a user still held gets its holder synced from
    Clerk first, then one more try; still held after that, it is `failed` with the reason."""
    settled = []
    for user in users:
        with unit_of_work() as work:
            applied = apply_snapshot(work, user)
        if applied.result == "held" and applied.holder is not None:
            holder = sync_user(client, applied.holder, settle=False)
            if holder.result == "held" and holder.holder == applied.clerk_id:
                applied = _exchange(client, user, applied.holder)
            else:
                with unit_of_work() as work:
                    applied = apply_snapshot(work, user)
        if applied.result == "held":
            applied = AppliedSnapshot(applied.clerk_id, "failed", applied.user_id, applied.reason)
        settled.append(applied)
    return settled


def _exchange(client: ClerkClient, user: dict[str, Any], holder_id: str) -> AppliedSnapshot:
    """Two users who exchanged addresses in Clerk, each holding the other's here: both rows
    written in one transaction, the holder's address parked in between (never committed)."""
    holder = client.get_user(holder_id)
    try:
        with unit_of_work() as work:
            lock_users(work.session, sorted((user["id"], holder_id)))
            if holder is None:
                erase_user(work, holder_id)
                return apply_snapshot(work, user)
            park_address(work.session, holder_id)
            applied = apply_snapshot(work, user)
            if applied.result == "held" or apply_snapshot(work, holder).result == "held":
                raise _NotExchangedError
            return applied
    except _NotExchangedError:
        reason = HELD.format(holder=holder_id)
        return AppliedSnapshot(user["id"], "held", reason=reason, holder=holder_id)


class _NotExchangedError(Exception):
    """Roll the exchange back: the two users do not resolve each other."""
