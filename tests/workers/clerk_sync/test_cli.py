"""`cpn-sync clerk ...` as an operator runs it: real processes against the fake Clerk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, text

from cpn_sync.fake_clerk import FakeClerk, RunningFake
from cpn_sync.local import free_port
from tests.ops.terminal import TerminalProcess
from tests.services import ROOT
from tests.workers.clerk_sync.conftest import KEY, expected_users, stored_users

CLI = str(Path(sys.executable).parent / "cpn-sync")


def _env(served: RunningFake, **values: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CLERK_SECRET_KEY=KEY, CLERK_API_URL=served.api_url, LOG_LEVEL="WARNING")
    env.update(values)
    return env


def _run(served: RunningFake, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "clerk", *args],
        env=_env(served, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _cursor(engine: Engine) -> str | None:
    with engine.connect() as connection:
        cursor: str | None = connection.execute(
            text("SELECT cursor FROM clerk_sync_state WHERE job = 'backfill'")
        ).scalar()
    return cursor


class TestBackfillCommand:
    def test_prints_what_it_did(self, engine: Engine, fake: FakeClerk, served: RunningFake) -> None:
        result = _run(served, "backfill")

        assert result.returncode == 0, result.stderr
        assert f"backfill: {len(fake.users)} users in 4 pages" in result.stdout
        assert f"created {len(fake.users)}, updated 0, unchanged 0" in result.stdout
        assert stored_users(engine) == expected_users(fake)

    def test_dry_run_says_would_and_writes_nothing(
        self, engine: Engine, fake: FakeClerk, served: RunningFake
    ) -> None:
        result = _run(served, "backfill", "--dry-run")

        assert result.returncode == 0, result.stderr
        assert f"would be created {len(fake.users)}" in result.stdout
        assert stored_users(engine) == {}

    def test_killed_after_two_pages_it_resumes_after_the_last_page_written(
        self, engine: Engine, fake: FakeClerk, served: RunningFake
    ) -> None:
        fake.latency_seconds = 0.4  # time to kill it between pages
        ordered = sorted(fake.users.values(), key=lambda user: (user["created_at"], user["id"]))
        second_page_end = ordered[999]["id"]
        process = subprocess.Popen(
            [CLI, "clerk", "backfill"], env=_env(served), stdout=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while _cursor(engine) != second_page_end:
                assert time.monotonic() < deadline, "the backfill never wrote two pages"
                assert process.poll() is None, "the backfill ended before it was killed"
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        assert len(stored_users(engine)) == 1000
        fake.latency_seconds = 0
        before = len(fake.recorded())

        result = _run(served, "backfill")

        assert result.returncode == 0, result.stderr
        assert f"resumed after {second_page_end}" in result.stdout
        first = fake.recorded()[before]
        assert dict(first.query)["starting_after"] == second_page_end
        assert stored_users(engine) == expected_users(fake)
        assert _cursor(engine) is None

    def test_a_wrong_key_is_one_line_and_exit_status_1(self, served: RunningFake) -> None:
        wrong = "sk_test_not_this_instance_0000000000000"
        result = _run(served, "backfill", CLERK_SECRET_KEY=wrong)

        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines == [lines[0]]
        assert "CLERK_SECRET_KEY" in lines[0]
        assert "401" in lines[0]
        assert wrong not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr

    def test_an_api_that_does_not_answer_is_one_line_and_exit_status_1(
        self, served: RunningFake
    ) -> None:
        closed = f"http://127.0.0.1:{free_port()}/v1"
        result = _run(served, "backfill", CLERK_API_URL=closed)

        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines[-1] == "Error: Clerk did not answer GET /users (ConnectError) after 5 attempts"
        assert all('"event":"clerk_api.retry"' in line for line in lines[:-1])  # logged retries
        assert "Traceback" not in result.stderr

    def test_no_key_says_which_variable_to_set(self, served: RunningFake) -> None:
        env = _env(served)
        env.pop("CLERK_SECRET_KEY")
        result = subprocess.run(
            [CLI, "clerk", "reconcile"], env=env, capture_output=True, text=True, check=False
        )

        assert result.returncode == 1
        assert "CLERK_SECRET_KEY is not set" in result.stderr
        assert "Traceback" not in result.stderr


class TestOtherCommands:
    def test_reconcile_prints_the_drift_by_kind(
        self, engine: Engine, fake: FakeClerk, served: RunningFake
    ) -> None:
        _run(served, "backfill")
        fake.delete_user(sorted(fake.users)[0])

        result = _run(served, "reconcile")

        assert result.returncode == 0, result.stderr
        assert "drift found and repaired: missing 0, stale 0, extra 1" in result.stdout

    def test_sync_user_that_clerk_deleted_exits_0_and_says_erased(
        self, engine: Engine, fake: FakeClerk, served: RunningFake
    ) -> None:
        _run(served, "backfill")
        user_id = sorted(fake.users)[1]
        fake.delete_user(user_id)

        result = _run(served, "sync-user", user_id)

        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{user_id}: erased"

    def test_status_shows_each_jobs_last_success(
        self, engine: Engine, fake: FakeClerk, served: RunningFake
    ) -> None:
        _run(served, "backfill")

        result = _run(served, "status")

        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("backfill: started ")
        assert f"created {len(fake.users)}" in lines[0]
        assert lines[1:] == ["sync_recent: never ran", "reconcile: never ran"]


def test_a_terminal_shows_a_progress_bar_to_the_whole_count(
    engine: Engine, fake: FakeClerk, served: RunningFake
) -> None:
    shown = TerminalProcess([CLI, "clerk", "backfill"], _env(served), ROOT)

    assert shown.finish() == 0, shown.output
    assert "backfill  [####################################]  100%" in shown.output
    assert f"created {len(fake.users)}" in shown.output
