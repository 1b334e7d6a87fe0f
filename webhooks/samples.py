"""Sample Clerk events for `cpn-sync send`, shaped like Clerk's published examples.

Each call gives new ids, a new email address and a new name, so that repeated sends create new
users; `user_id` ties session events (or a later `user.updated`) to a user sent before.
Addresses and IPs are reserved for documentation (example.com, 203.0.113.0/24).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import secrets
import string
from functools import cache
from pathlib import Path
from typing import Any

SAMPLES_DIR = Path(__file__).parent / "sample_events"
USER_EVENTS = ("user.created", "user.updated", "user.deleted")
SESSION_STATUSES = {
    "session.created": "active",
    "session.pending": "pending",
    "session.ended": "ended",
    "session.removed": "removed",
    "session.revoked": "revoked",
}
SAMPLE_TYPES = (*USER_EVENTS, *SESSION_STATUSES)
FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emeka", "Fatima", "Goran", "Hana", "Ivo", "June")
LAST_NAMES = ("Alvarez", "Brown", "Chen", "Dubois", "Eze", "Fischer", "Garcia", "Haddad")
USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36"
)
_ALPHABET = string.ascii_letters + string.digits


def clerk_id(prefix: str) -> str:
    """An id in Clerk's style: prefix, underscore, 27 random letters and digits."""
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(27))}"


@cache
def _template(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES_DIR / f"{name}.json").read_text())
    return loaded


def _user(user_id: str, now_ms: int, *, onboarding: bool) -> dict[str, Any]:
    user = copy.deepcopy(_template("user"))
    email_id = clerk_id("idn")
    first = secrets.choice(FIRST_NAMES)
    last = secrets.choice(LAST_NAMES)
    user.update(
        id=user_id,
        primary_email_address_id=email_id,
        first_name=first,
        last_name=last,
        created_at=now_ms,
        updated_at=now_ms,
        last_active_at=now_ms,
        last_sign_in_at=now_ms,
    )
    address = user["email_addresses"][0]
    address.update(id=email_id, email_address=f"{first.lower()}.{secrets.token_hex(4)}@example.com")
    if onboarding:
        yesterday = (dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC) - dt.timedelta(days=1)).date()
        user["unsafe_metadata"] = {
            "onboarding": {
                "sessionDataId": clerk_id("ssd"),
                "profile": {"firstName": first, "age": 27, "ethnicity": "latina", "rating": 8.5},
                "dataEntry": {
                    "date": yesterday.isoformat(),
                    "cost": 120.5,
                    "time": 90,
                    "nuts": 2,
                    "notes": "sample entry",
                },
            }
        }
    return user


def _session(event_type: str, user_id: str, now_ms: int) -> dict[str, Any]:
    session = copy.deepcopy(_template("session"))
    session.update(
        id=clerk_id("sess"),
        user_id=user_id,
        client_id=clerk_id("client"),
        status=SESSION_STATUSES[event_type],
        last_active_at=now_ms,
        expire_at=now_ms + 7 * 24 * 3600 * 1000,
        abandon_at=now_ms + 30 * 24 * 3600 * 1000,
        created_at=now_ms,
        updated_at=now_ms,
        user=_user(user_id, now_ms, onboarding=False),
    )
    if event_type == "session.created":
        session["latest_activity"].update(
            id=clerk_id("activity"), ip_address=f"203.0.113.{secrets.randbelow(254) + 1}"
        )
    else:
        session["latest_activity"] = None  # as in Clerk's examples: only creation carries it
    return session


def sample_event(
    event_type: str,
    *,
    user_id: str | None = None,
    onboarding: bool = False,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """A complete envelope of `event_type` (one of SAMPLE_TYPES)."""
    if event_type not in SAMPLE_TYPES:
        raise ValueError(f"no sample for {event_type!r}; samples: {', '.join(SAMPLE_TYPES)}")
    moment = now or dt.datetime.now(dt.UTC)
    now_ms = int(moment.timestamp() * 1000)
    user_id = user_id or clerk_id("user")
    data: dict[str, Any]
    if event_type == "user.deleted":
        data = {"object": "user", "id": user_id, "deleted": True, "external_id": None}
    elif event_type in USER_EVENTS:
        data = _user(user_id, now_ms, onboarding=onboarding)
    else:
        data = _session(event_type, user_id, now_ms)
    return {
        "data": data,
        "object": "event",
        "type": event_type,
        "timestamp": now_ms // 1000,
        "instance_id": "ins_sample",
        "event_attributes": {
            "http_request": {
                "client_ip": f"203.0.113.{secrets.randbelow(254) + 1}",
                "user_agent": USER_AGENT,
            }
        },
    }
