"""Onboarding objects and users for the session-data migration tests."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import DataMigration, User, UserInteraction, UserProfile
from workers.onboarding.validation import utc_today

# The CPN requests a test saw: (task name, args), oldest first.
Requests = Callable[[], list[tuple[str, list[Any]]]]
PAST_DATE = (utc_today() - dt.timedelta(days=10)).isoformat()


def new_clerk_id() -> str:
    return f"user_{uuid.uuid4().hex}"


def make_user(session: Session, clerk_id: str | None = None) -> User:
    clerk_id = clerk_id or new_clerk_id()
    user = User(clerk_id=clerk_id, email=f"{clerk_id}@example.com", email_verified=True)
    session.add(user)
    session.flush()
    return user


def entry(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "date": PAST_DATE,
        "cost": 120.5,
        "time": 90,
        "nuts": 2,
        "notes": "first night out",
    }
    return {**fields, **changes}


def onboarding(**changes: Any) -> dict[str, Any]:
    """The DESIGN.md example object; `changes` replace top-level keys (None removes one)."""
    fields: dict[str, Any] = {
        "sessionDataId": f"ssd_{uuid.uuid4().hex}",
        "profile": {"firstName": "Ana", "age": 27, "ethnicity": "latina", "rating": 8.5},
        "dataEntry": entry(),
    }
    merged = {**fields, **changes}
    return {key: value for key, value in merged.items() if value is not None}


def with_value(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `obj` with the value at `path` replaced (or removed, for `...`)."""
    changed = copy.deepcopy(obj)
    parent: Any = changed
    for part in path[:-1]:
        parent = parent[part]
    if value is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return changed


def count_rows(session: Session, user: User) -> dict[str, int]:
    """How many profile, interaction and data_migrations rows the user has."""

    def count(model: Any) -> int:
        query = select(func.count()).select_from(model).where(model.user_id == user.id)
        return session.scalar(query) or 0

    return {
        "profiles": count(UserProfile),
        "interactions": count(UserInteraction),
        "migrations": count(DataMigration),
    }
