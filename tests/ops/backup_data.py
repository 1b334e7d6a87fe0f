"""Varied rows in all six user tables: the awkward values a backup must carry unchanged."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import delete
from sqlalchemy.orm import Session

from cpn_sync.backup.dump import BACKUP_TABLES
from cpn_sync.settings import libpq_url
from db.engine import make_engine
from db.models import (
    DataMigration,
    DeletedUser,
    User,
    UserCpnResult,
    UserInteraction,
    UserProfile,
    UserSession,
)

UTC = dt.UTC
AWKWARD_TEXT = "tab\there, new\nline, back\\slash, quote ' \" , Zoë 🥜, \\N, \\."


def fill(database_url: str) -> None:
    """Users with and without profiles, interactions (the generated columns come from the
    server), CPN results, sessions with IPv4, IPv6 and no address, data migrations with JSONB;
    and one deleted user with its tombstone, so the sequences stand past the largest id."""
    engine = make_engine(database_url)
    t0 = dt.datetime(2025, 8, 23, 12, 0, 0, 123456, tzinfo=UTC)
    try:
        with Session(engine) as session:
            users = [
                User(
                    clerk_id=f"user_{n}",
                    email=f"person{n}@example.com",
                    email_verified=n % 2 == 0,
                    first_name=["Ana", "Zoë", None, "O'Brien", "Gone"][n],
                    last_name=[None, "Łukasz", "", "Smith", "Away"][n],
                    image_url=f"https://img.example.com/{n}.png" if n != 2 else None,
                    created_at=t0 + dt.timedelta(days=n),
                    updated_at=t0 + dt.timedelta(days=n, hours=1),
                    last_sign_in_at=None if n == 1 else t0 + dt.timedelta(days=n, minutes=5),
                )
                for n in range(5)
            ]
            session.add_all(users)
            session.flush()
            ana, zoe, _no_profile, obrien, gone = users
            session.add_all(
                [
                    UserProfile(user_id=ana.id, clerk_id=ana.clerk_id, first_name="Bea",
                                age=27, ethnicity="latina", rating=Decimal("8.5")),
                    UserProfile(user_id=zoe.id, clerk_id=zoe.clerk_id, first_name="Cy",
                                age=None, ethnicity=None, rating=Decimal("0.0")),
                ]
            )  # fmt: skip
            for n, (cost, minutes, nuts) in enumerate(
                [("120.50", 90, 2), ("0.00", 15, 0), ("99999999.99", 1440, 5), ("33.33", 47, 1)]
            ):
                owner = [ana, ana, zoe, obrien][n]
                session.add(
                    UserInteraction(
                        user_id=owner.id, clerk_id=owner.clerk_id,
                        interaction_date=dt.date(2025, 1, 1) + dt.timedelta(days=40 * n),
                        cost=Decimal(cost), time_minutes=minutes, nuts=nuts,
                        notes=AWKWARD_TEXT if n == 0 else None,
                    )
                )  # fmt: skip
            session.add_all(
                [
                    UserCpnResult(
                        user_id=ana.id, clerk_id=ana.clerk_id, total_interactions=2,
                        total_cost=Decimal("120.50"), total_time_hours=Decimal("1.75"),
                        total_nuts=2, average_cost_per_nut=Decimal("60.25"),
                        average_cost_per_hour=Decimal("68.86"),
                        average_nuts_per_hour=Decimal("1.143"),
                        overall_efficiency_score=Decimal("2.524"),
                        calculation_period_start=dt.date(2025, 1, 1),
                        calculation_period_end=dt.date(2025, 2, 10),
                        recommendations=[
                            {"code": "cost_high", "message": "Zoë says: \"spend less\" 🥜"},
                            {"code": "nested", "message": None, "extra": {"a": [1, 2.5, True]}},
                        ],
                        shareable_graphic_url="http://localhost:8000/share/tok_abc",
                    ),
                    UserCpnResult(user_id=zoe.id, clerk_id=zoe.clerk_id, recommendations=[]),
                ]
            )  # fmt: skip
            session.add_all(
                [
                    _session(ana, "sess_v4", "203.0.113.7", t0, ended=True),
                    _session(ana, "sess_v6", "2001:db8::1", t0 + dt.timedelta(hours=2)),
                    _session(obrien, "sess_none", None, t0),
                ]
            )
            session.add_all(
                [
                    DataMigration(
                        migration_name="session_to_user", session_data_id="ssd_1",
                        clerk_id=ana.clerk_id, user_id=ana.id, migration_type="session_to_user",
                        original_data={"onboarding": {
                            "profile": {"firstName": "Bea", "age": 27},
                            "dataEntry": [{"cost": 120.5, "notes": "ü"}],
                        }},
                        migrated_data={"profile_id": 1, "interaction_ids": [1, 2]},
                        status="completed", completed_at=t0,
                    ),
                    DataMigration(
                        migration_name="session_to_user", session_data_id="ssd_2",
                        clerk_id="user_unknown", user_id=None, migration_type="session_to_user",
                        original_data={"onboarding": {"profile": {"age": 7}}},
                        status="failed", error_message="age: must be between 18 and 99",
                    ),
                ]
            )  # fmt: skip
            session.flush()
            session.execute(delete(User).where(User.id == gone.id))
            session.add(DeletedUser(clerk_id=gone.clerk_id, deleted_at=t0))
            session.commit()
    finally:
        engine.dispose()


def _session(
    user: User, session_id: str, ip: str | None, start: dt.datetime, *, ended: bool = False
) -> UserSession:
    return UserSession(
        user_id=user.id, clerk_id=user.clerk_id, session_id=session_id, ip_address=ip,
        user_agent="Mozilla/5.0 (X11; Linux x86_64)" if ip else None,
        device_type="desktop", browser="Firefox", location_country="DE" if ip else None,
        location_city="Köln" if ip else None, created_at=start,
        last_active_at=start + dt.timedelta(minutes=30),
        expires_at=start + dt.timedelta(days=7),
        ended_at=start + dt.timedelta(hours=1) if ended else None, is_active=not ended,
    )  # fmt: skip


def snapshot(database_url: str) -> dict[str, Any]:
    """Every row of every backed-up table (all columns, by id), and each table's sequence."""
    tables: dict[str, Any] = {}
    with psycopg.connect(libpq_url(database_url)) as conn:
        for table in BACKUP_TABLES:
            tables[table] = conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            sequence = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
            assert sequence is not None
            tables[f"{table}.sequence"] = conn.execute(
                f"SELECT last_value, is_called FROM {sequence[0]}"
            ).fetchone()
    return tables
