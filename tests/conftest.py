"""Test run set-up: real PostgreSQL migrated with Alembic, real Redis, environment set first."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests import services

TEST_WEBHOOK_SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLWNwbi1zeW5jLXRlc3Rz"
APP_TABLES = (
    "webhook_events",
    "data_migrations",
    "user_sessions",
    "user_cpn_results",
    "user_interactions",
    "user_profiles",
    "users",
)

_servers: services.TestServers | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Choose the servers and export the environment before any test imports the app."""
    global _servers
    _servers = services.start()
    database_url = _servers.new_database()
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=_servers.redis_url,
        CLERK_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
        LOG_FORMAT="json",
    )
    # A RabbitMQ run sets TEST_BROKER_URL; otherwise Redis is the broker.
    if os.environ.get("TEST_BROKER_URL"):
        os.environ["CELERY_BROKER_URL"] = os.environ["TEST_BROKER_URL"]
        services.purge_task_queues(os.environ["TEST_BROKER_URL"])
    else:
        os.environ.pop("CELERY_BROKER_URL", None)
    from cpn_sync.settings import get_settings

    get_settings.cache_clear()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _servers is not None:
        _servers.close()


@pytest.fixture(scope="session")
def test_servers() -> services.TestServers:
    assert _servers is not None
    return _servers


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ["DATABASE_URL"]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ["REDIS_URL"]


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    from db.engine import make_engine

    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside one transaction that is rolled back after the test.

    Code under test may commit: commits become savepoints of the outer transaction.
    """
    with engine.connect() as connection:
        outer = connection.begin()
        with Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        ) as db_session:
            yield db_session
        outer.rollback()


@pytest.fixture
def clean_db(engine: Engine) -> Iterator[Engine]:
    """For tests whose other processes commit for real: empty every table afterwards."""
    yield engine
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE"))
