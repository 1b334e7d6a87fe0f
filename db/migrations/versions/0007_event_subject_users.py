"""Every stored event records the user it names, and ignored events keep no payload.

Data only (no schema change). The web now stores in `webhook_events.clerk_user_id` the subject
user of every event that names one, not only of `user.*` and `session.*` events
(`cpn_sync.clerk.subject_user_id`), so that `user.deleted` erases every stored payload about
the user. This fills it in for the rows stored before, from the same places in the payload, and
erases the payloads of the `ignored` events stored before: the service keeps no personal data
that it does not use (an `email.created` carries an address, a one-time code and the mail).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The paths of `cpn_sync.clerk.SUBJECT_USER_PATHS`, written out: a migration must not change
# when the code does. The first path that holds a string of a Clerk id's length wins.
USER_PATH = "{data,id}"
OTHER_PATHS = ("{data,user_id}", "{data,public_user_data,user_id}", "{data,payer,user_id}",
               "{data,created_by}")  # fmt: skip


def _id_at(path: str) -> str:
    value = f"payload #>> '{path}'"
    return (
        f"CASE WHEN jsonb_typeof(payload #> '{path}') = 'string' "
        f"AND length({value}) BETWEEN 1 AND 255 THEN {value} END"
    )


SUBJECT = (
    f"CASE WHEN event_type LIKE 'user.%' THEN {_id_at(USER_PATH)} "
    f"ELSE coalesce({', '.join(_id_at(path) for path in OTHER_PATHS)}) END"
)


def upgrade() -> None:
    op.execute(
        f"UPDATE webhook_events SET clerk_user_id = {SUBJECT} "
        "WHERE clerk_user_id IS NULL AND payload IS NOT NULL"
    )
    op.execute(
        "UPDATE webhook_events SET payload = NULL, redacted_at = now() "
        "WHERE status = 'ignored' AND payload IS NOT NULL"
    )


def downgrade() -> None:
    """Nothing to undo: the recorded users are right for the older code too, and erased
    payloads cannot come back."""
