"""Settings read from the environment: URL forms, secret lists, and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cpn_sync.settings import SettingsError, get_settings, normalize_database_url
from tests.services import environment

CLI = str(Path(sys.executable).parent / "cpn-sync")


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """get_settings() reads the environment again in this test, and again after it."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://app:pw@db.internal:5432/cpn",
        "postgres://app:pw@db.internal:5432/cpn",
        "postgresql+psycopg://app:pw@db.internal:5432/cpn",
        "  postgresql://app:pw@db.internal:5432/cpn\n",
    ],
)
def test_every_accepted_form_becomes_the_psycopg_url(raw: str, fresh_settings: None) -> None:
    expected = "postgresql+psycopg://app:pw@db.internal:5432/cpn"
    assert normalize_database_url(raw) == expected
    with environment(DATABASE_URL=raw):
        assert get_settings().database_url == expected


def test_an_empty_database_url_counts_as_unset(fresh_settings: None) -> None:
    with environment(DATABASE_URL="  "):
        settings = get_settings()

    assert settings.database_url is None
    with pytest.raises(SettingsError, match="DATABASE_URL is not set"):
        settings.require_database_url()


@pytest.mark.parametrize(
    "raw", ["mysql://bob:hunter2@db/cpn", "postgresql+asyncpg://bob:hunter2@db/cpn", "db/cpn"]
)
def test_a_bad_database_url_is_a_settings_error_that_hides_the_password(
    raw: str, fresh_settings: None
) -> None:
    with environment(DATABASE_URL=raw), pytest.raises(SettingsError) as raised:
        get_settings()

    message = str(raised.value)
    assert message.startswith("DATABASE_URL: a PostgreSQL URL must start with postgresql://")
    assert "hunter2" not in message


def test_the_command_line_reports_a_bad_url_without_a_traceback() -> None:
    env = {**os.environ, "DATABASE_URL": "mysql://bob:hunter2@db/cpn"}

    result = subprocess.run([CLI, "migrate"], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert result.stderr.startswith("Error: DATABASE_URL: a PostgreSQL URL must start with")
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("raw", "secrets"),
    [
        ("whsec_one", ["whsec_one"]),
        ("whsec_one whsec_two", ["whsec_one", "whsec_two"]),
        ("whsec_one,whsec_two", ["whsec_one", "whsec_two"]),
        (" whsec_one ,\twhsec_two,, whsec_three ", ["whsec_one", "whsec_two", "whsec_three"]),
        ("", []),
    ],
)
def test_webhook_secrets_split_on_spaces_and_commas(
    raw: str, secrets: list[str], fresh_settings: None
) -> None:
    with environment(CLERK_WEBHOOK_SECRET=raw):
        assert get_settings().webhook_secrets == secrets


def test_no_webhook_secret_means_an_empty_list(fresh_settings: None) -> None:
    with environment(CLERK_WEBHOOK_SECRET=None):
        assert get_settings().webhook_secrets == []


def test_libpq_url_percent_encodes_the_password() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from cpn_sync.settings import libpq_url

    url = libpq_url("postgresql+psycopg://cpn:p%20a%40ss%2Bw@db.internal:5432/cpn")
    assert conninfo_to_dict(url) == {
        "user": "cpn",
        "password": "p a@ss+w",
        "host": "db.internal",
        "port": "5432",
        "dbname": "cpn",
    }


def test_libpq_url_keeps_a_socket_host_and_an_empty_password() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from cpn_sync.settings import libpq_url

    url = libpq_url("postgresql+psycopg://postgres:@/postgres?host=/run/pg-socket")
    assert conninfo_to_dict(url) == {  # an empty password is no password to libpq
        "user": "postgres",
        "host": "/run/pg-socket",
        "dbname": "postgres",
    }
