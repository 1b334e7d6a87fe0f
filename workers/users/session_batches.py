"""Many `session.*` events' rows in few statements: the merge of `session_events` for a batch.

Rows travel as one JSON parameter (as a page of users does, `user_batches`), each row takes its
user's id from `users` in the same statement, and a row whose user is not stored is not
written (its event then goes the one-by-one way: a user snapshot, or waiting). One statement
cannot merge two rows into one session (PostgreSQL refuses to update a row twice), so the rows
go in rounds: the n-th event of a session in the n-th round; the merge does not depend on the
order of arrival, so the rounds give the row that any order would.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Final

import orjson
from sqlalchemy import Boolean, Text, bindparam, cast, column, func, select, true
from sqlalchemy.dialects.postgresql import INET, JSONB, TIMESTAMP, insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from workers.users.session_events import SESSION_COLUMNS, SESSIONS, merge_on_conflict
from workers.users.user_events import USERS

_TIME = TIMESTAMP(timezone=True)
# Each proposed column's SQL type in the batch's JSON records (all but `user_id`).
_RECORD_TYPES: Final[dict[str, Any]] = {
    "clerk_id": Text,
    "session_id": Text,
    "user_agent": Text,
    "is_active": Boolean,
    "ip_address": INET,
    "device_type": Text,
    "browser": Text,
    "location_country": Text,
    "location_city": Text,
    "created_at": _TIME,
    "last_active_at": _TIME,
    "expires_at": _TIME,
    "ended_at": _TIME,
}
assert ("user_id", *_RECORD_TYPES) == SESSION_COLUMNS


def _build_batch_upsert(from_activity: bool) -> ReturningInsert[Any]:
    proposed = (
        func.jsonb_to_recordset(cast(bindparam("rows", type_=Text), JSONB))
        .table_valued(*(column(name, kind) for name, kind in _RECORD_TYPES.items()))
        .render_derived(name="proposed", with_types=True)
    )
    # Each row's user by its index, one at a time (a LATERAL with LIMIT is never turned into a
    # join): a generic plan that guessed 100 rows, with statistics taken while `users` was
    # small, would otherwise scan every user for each batch.
    owner = (
        select(USERS.c.id).where(USERS.c.clerk_id == proposed.c.clerk_id).limit(1).lateral("owner")
    )
    rows = select(owner.c.id, *(proposed.c[name] for name in _RECORD_TYPES)).join_from(
        proposed, owner, true()
    )
    statement = insert(SESSIONS).from_select(list(SESSION_COLUMNS), rows)
    return merge_on_conflict(statement, from_activity).returning(SESSIONS.c.clerk_id)


_UPSERT_SESSIONS = {kind: _build_batch_upsert(kind) for kind in (True, False)}


def upsert_sessions(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Merge every row (`session_events.session_row`) whose user is stored; answer the Clerk
    ids of the users of rows that were not written (no such user)."""
    rounds: dict[tuple[bool, int], list[dict[str, Any]]] = defaultdict(list)
    seen: Counter[str] = Counter()
    for row in rows:
        rounds[(row["from_activity"], seen[row["session_id"]])].append(row)
        seen[row["session_id"]] += 1
    written: set[str] = set()
    for (from_activity, _), records in sorted(rounds.items(), key=lambda item: item[0][1]):
        text = orjson.dumps([{name: row[name] for name in _RECORD_TYPES} for row in records])
        written.update(session.scalars(_UPSERT_SESSIONS[from_activity], {"rows": text.decode()}))
    return {row["clerk_id"] for row in rows} - written
