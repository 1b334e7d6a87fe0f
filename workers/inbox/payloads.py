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

from sqlalchemy import ColumnElement, Table, Text, case, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB, array

from db.models import WebhookEvent

EVENTS = cast(Table, WebhookEvent.__table__)
METADATA = ("unsafe_metadata", "public_metadata", "private_metadata")


def _path(*keys: str) -> ColumnElement[Any]:
    return array(keys, type_=Text)


_METADATA_KEYS = array(METADATA, type_=Text)


def _without_metadata_keys(document: ColumnElement[Any]) -> ColumnElement[Any]:
    return document.op("-", return_type=JSONB)(_METADATA_KEYS)


def _is_object(document: ColumnElement[Any]) -> ColumnElement[bool]:
    return func.jsonb_typeof(document) == "object"


def _member(document: ColumnElement[Any], key: str) -> ColumnElement[Any]:
    return document.op("->", return_type=JSONB)(key)


# `data` without its metadata, once per row: NULL when `data` is not an object (`-` raises on a
# scalar). OFFSET 0 keeps PostgreSQL from merging it into the outer query, where each use
# would take it out of the stored (compressed) payload again.
_DATA = _member(EVENTS.c.payload, "data")
STRIPPED_DATA = (
    select(case((_is_object(_DATA), _without_metadata_keys(_DATA))).label("data"))
    .correlate(EVENTS)
    .offset(0)
    .lateral("stripped")
)


def _without_metadata() -> ColumnElement[Any]:
    """The stored payload with `STRIPPED_DATA` as its `data`, whose `user` (an object) is
    stripped too; the payload itself when `data` is not an object."""
    payload = EVENTS.c.payload
    data = STRIPPED_DATA.c.data
    user = _member(data, "user")
    data_and_user = case(
        (_is_object(user), func.jsonb_set(data, _path("user"), _without_metadata_keys(user))),
        else_=data,
    )
    return case(
        (data.is_(None), payload), else_=func.jsonb_set(payload, _path("data"), data_and_user)
    )


# The payload's JSON text without `data.*_metadata` and `data.user.*_metadata`; NULL once
# redacted. A select that reads it joins `STRIPPED_DATA` (`LATERAL`) after the events.
PAYLOAD_TEXT = sql_cast(_without_metadata(), Text)
# The JSON text of `data.unsafe_metadata.onboarding` of a user event; NULL when absent.
ONBOARDING_TEXT = case(
    (
        EVENTS.c.event_type.like("user.%"),
        sql_cast(EVENTS.c.payload.op("#>")(_path("data", "unsafe_metadata", "onboarding")), Text),
    )
)
