"""What the apply path reads of a stored payload, and how: as text, never decoded by the
statements that lock a batch's rows.

`unsafe_metadata` is written by the end user's browser (any depth, size or types) and rides in
every `session.*` event's `data.user` too. No handler uses the metadata, so the payload is
fetched without it, as text, and each event decodes its own text in its own attempt
(`workers.inbox.dispatch`): a text that cannot be decoded fails that event alone, never the
batch. The onboarding object, the only metadata the service uses, is fetched apart as text for
the onboarding feature to decode, where a failure fails only the user's migration.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Text, case, func
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import array

from db.models import WebhookEvent

EVENTS = cast(Table, WebhookEvent.__table__)
METADATA = ("unsafe_metadata", "public_metadata", "private_metadata")


def _path(*keys: str) -> ColumnElement[Any]:
    return array(keys, type_=Text)


def _without_metadata(payload: ColumnElement[Any]) -> ColumnElement[Any]:
    """`#-` raises on a scalar or an array on its path: only objects are entered."""
    for parent in (("data",), ("data", "user")):
        stripped = payload
        for name in METADATA:
            stripped = stripped.op("#-")(_path(*parent, name))
        is_object = func.jsonb_typeof(payload.op("#>")(_path(*parent))) == "object"
        payload = case((is_object, stripped), else_=payload)
    return payload


# The payload's JSON text without `data.*_metadata` and `data.user.*_metadata`; NULL once
# redacted.
PAYLOAD_TEXT = sql_cast(_without_metadata(EVENTS.c.payload), Text)
# The JSON text of `data.unsafe_metadata.onboarding` of a user event; NULL when absent.
ONBOARDING_TEXT = case(
    (
        EVENTS.c.event_type.like("user.%"),
        sql_cast(EVENTS.c.payload.op("#>")(_path("data", "unsafe_metadata", "onboarding")), Text),
    )
)
