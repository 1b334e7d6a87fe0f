"""Clerk events built from Clerk's published examples (../shared/clerk-payloads/), and the
inbox rows the web process would store for them."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from functools import cache
from typing import Any

from sqlalchemy import Engine, insert, select

from cpn_sync.clerk import subject_user_id
from db.models import WebhookEvent
from tests.services import SHARED

PAYLOADS = SHARED / "clerk-payloads"


@cache
def _example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return loaded


def example(name: str) -> dict[str, Any]:
    """A fresh copy of one published example, e.g. `user.created`."""
    return copy.deepcopy(_example(name))


def email_address(address_id: str, address: str, status: str | None = "verified") -> dict[str, Any]:
    return {
        "object": "email_address",
        "id": address_id,
        "email_address": address,
        "linked_to": [],
        "verification": None if status is None else {"status": status, "strategy": "email_code"},
    }


def at_ms(value: int) -> dt.datetime:
    """A Clerk `*_at` value (epoch milliseconds) as the aware datetime stored for it."""
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def user_data(
    clerk_id: str,
    *,
    email: str | None = None,
    updated_at: int = 1716883200000,
    **fields: Any,
) -> dict[str, Any]:
    """The `data` of the spec's user.created, with one verified primary address added (the
    spec's own example has none)."""
    data: dict[str, Any] = example("user.created")["data"]
    data["id"] = clerk_id
    data["updated_at"] = updated_at
    if email is not None:
        address_id = f"idn_{clerk_id}"
        data["primary_email_address_id"] = address_id
        data["email_addresses"] = [email_address(address_id, email)]
    data.update(fields)
    return data


def user_event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    envelope = example("user.updated" if event_type == "user.updated" else "user.created")
    envelope["type"] = event_type
    envelope["data"] = data
    return envelope


def deleted_event(clerk_id: str) -> dict[str, Any]:
    envelope = example("user.deleted")
    envelope["data"]["id"] = clerk_id
    return envelope


def session_event(
    event_type: str,
    session_id: str,
    clerk_id: str,
    *,
    user: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One of the spec's session examples for another session and user."""
    envelope = example(event_type)
    data = envelope["data"]
    data["id"] = session_id
    data["user_id"] = clerk_id
    data["user"] = user if user is not None else {**data["user"], "id": clerk_id}
    data.update(fields)
    return envelope


def clerk_user_id(payload: dict[str, Any]) -> str | None:
    """What the web stores in `clerk_user_id` (DESIGN.md section 2, ingestion issue)."""
    return subject_user_id(payload["type"], payload.get("data") or {})


def inbox_row(
    payload: dict[str, Any],
    *,
    svix_id: str | None = None,
    received_at: dt.datetime | None = None,
    status: str = "received",
) -> dict[str, Any]:
    """The values the web process inserts for one verified delivery."""
    values: dict[str, Any] = {
        "svix_id": svix_id or f"msg_{uuid.uuid4().hex}",
        "event_type": payload["type"],
        "clerk_user_id": clerk_user_id(payload),
        "payload": payload,
        "status": status,
    }
    if received_at is not None:
        values["received_at"] = received_at
    return values


def store_event(
    engine: Engine,
    payload: dict[str, Any],
    *,
    svix_id: str | None = None,
    received_at: dt.datetime | None = None,
    status: str = "received",
) -> int:
    """Insert one inbox row as the web process does; answer its id."""
    values = inbox_row(payload, svix_id=svix_id, received_at=received_at, status=status)
    with engine.begin() as connection:
        event_id: int = connection.execute(
            insert(WebhookEvent).values(values).returning(WebhookEvent.id)
        ).scalar_one()
    return event_id


def event_row(engine: Engine, event_id: int) -> Any:
    """The row, plus `erased`: the payload is SQL NULL (JSON `null` would not count)."""
    erased = WebhookEvent.payload.is_(None).label("erased")
    with engine.connect() as connection:
        return connection.execute(
            select(WebhookEvent, erased).where(WebhookEvent.id == event_id)
        ).one()
