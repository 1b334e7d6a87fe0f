"""Migration 0004: the change stamps the dirty scan relies on, and its way back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, text

from db.engine import make_engine
from db.migrate import alembic_config, upgrade
from tests.services import TestServers

SEED_USERS = (
    "INSERT INTO users (clerk_id, email) "
    "SELECT 'user_stamp_' || g, 'stamp' || g || '@example.test' FROM generate_series(1, :n) g"
)
SEED_INTERACTIONS = (
    "INSERT INTO user_interactions (user_id, clerk_id, interaction_date, cost, time_minutes, nuts) "
    "SELECT u.id, u.clerk_id, DATE '2025-01-06', 10, 30, 1 "
    "FROM users u, generate_series(1, :per_user)"
)


def _stamped(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT user_id FROM user_interaction_changes ORDER BY 1"))
        return list(rows.scalars())


def test_upgrade_stamps_users_who_already_have_interactions(test_servers: TestServers) -> None:
    url = test_servers.new_database(migrate=False)
    upgrade(url, "0002")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(SEED_USERS), {"n": 3})
            connection.execute(text(SEED_INTERACTIONS), {"per_user": 2})

        upgrade(url)

        assert _stamped(engine) == [1, 2, 3], "the first dirty scan computes everyone"
    finally:
        engine.dispose()


def test_bulk_insert_stamps_each_user_once(test_servers: TestServers) -> None:
    url = test_servers.new_database()
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(SEED_USERS), {"n": 50})
            connection.execute(text(SEED_INTERACTIONS), {"per_user": 20})
            first = connection.execute(
                text("SELECT max(change_id) FROM user_interaction_changes")
            ).scalar_one()
        assert _stamped(engine) == list(range(1, 51))

        with engine.begin() as connection:
            connection.execute(text("UPDATE user_interactions SET nuts = 2 WHERE user_id <= 10"))
            restamped = connection.execute(
                text("SELECT count(*) FROM user_interaction_changes WHERE change_id > :c"),
                {"c": first},
            ).scalar_one()
        assert restamped == 10
    finally:
        engine.dispose()


def test_downgrade_removes_everything_and_upgrade_restores_it(test_servers: TestServers) -> None:
    url = test_servers.new_database()
    config = alembic_config(url)

    command.downgrade(config, "0002")

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            leftovers = connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'cpn_%'), "
                    "to_regclass('user_interaction_changes'), "
                    "(SELECT count(*) FROM information_schema.columns "
                    " WHERE table_name = 'user_cpn_results' AND column_name = 'share_token')"
                )
            ).one()
        assert tuple(leftovers) == (0, None, 0)
        upgrade(url)
        with engine.begin() as connection:
            connection.execute(text(SEED_USERS), {"n": 1})
            connection.execute(text(SEED_INTERACTIONS), {"per_user": 1})
        assert _stamped(engine) == [1]
    finally:
        engine.dispose()
