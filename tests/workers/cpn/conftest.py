"""Factories and helpers for the CPN tests (real PostgreSQL, migrated with Alembic)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from db.cpn.recommendations import Thresholds
from db.cpn.recompute import RecomputeOutcome, recompute_users
from db.models import UserCpnResult

BASE_URL = "https://cpn.example"
MONDAY = dt.date(2025, 1, 6)
_numbers = itertools.count(1)


def make_user(session: Session) -> int:
    number = next(_numbers)
    user_id: int = session.execute(
        text("INSERT INTO users (clerk_id, email) VALUES (:clerk, :email) RETURNING id"),
        {"clerk": f"user_cpn_{number}", "email": f"cpn{number}@example.test"},
    ).scalar_one()
    return user_id


def add_interaction(
    session: Session,
    user_id: int,
    *,
    cost: str | Decimal,
    minutes: int,
    nuts: int,
    on: dt.date = MONDAY,
) -> int:
    """Written in SQL, as the app writes interactions (the trigger stamps the change)."""
    interaction_id: int = session.execute(
        text(
            "INSERT INTO user_interactions "
            "(user_id, clerk_id, interaction_date, cost, time_minutes, nuts, notes) "
            "SELECT id, clerk_id, :on, :cost, :minutes, :nuts, 'private note' "
            "FROM users WHERE id = :user_id RETURNING id"
        ),
        {"user_id": user_id, "on": on, "cost": Decimal(cost), "minutes": minutes, "nuts": nuts},
    ).scalar_one()
    return interaction_id


def recompute(
    session: Session, *user_ids: int, limits: Thresholds | None = None
) -> RecomputeOutcome:
    return recompute_users(
        session, list(user_ids), limits=limits or Thresholds(), public_base_url=BASE_URL
    )


def results_of(session: Session, user_id: int) -> list[Row[Any]]:
    """The user's result rows, oldest first."""
    table = UserCpnResult.__table__
    return list(
        session.execute(select(table).where(table.c.user_id == user_id).order_by(table.c.id)).all()
    )


def latest_of(session: Session, user_id: int) -> Row[Any]:
    rows = results_of(session, user_id)
    assert rows, f"user {user_id} has no CPN result"
    return rows[-1]


@pytest.fixture
def user(session: Session) -> int:
    return make_user(session)
