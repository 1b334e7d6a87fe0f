"""A developer's day with `cpn-sync dev` (what `make run` runs) in one terminal and commands in
another, none of them given a URL: they find the running stack, `send --wait` closes the loop,
an explicit variable wins, and once the stack stops (or was killed) nothing uses its file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from cpn_sync.local import free_port
from tests.ops.test_make_run import STARTUP_DEADLINE, UNSET, MakeRun, processes_of
from tests.services import ROOT

CLI = sys.prefix + "/bin/cpn-sync"


class DevRun(MakeRun):
    """`cpn-sync dev` (what `make run` runs), as a terminal runs it."""

    def __init__(self, data_dir: Path, log: Path, *options: str, **extra_env: str) -> None:
        super().__init__(data_dir, log, [CLI, "dev", *options], **extra_env)

    def wait_until_ready(self) -> None:
        """Up to /readyz: the web stores webhooks (its database answers)."""
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"cpn-sync dev exited with {self.process.returncode}:\n{self.output}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2.0).is_success:
                    return
            time.sleep(0.5)
        pytest.fail(f"not ready within {STARTUP_DEADLINE} s:\n{self.output[-4000:]}")


def another_terminal(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A command in a fresh shell of the same checkout: no URL, no secret, no PORT set."""
    environ = {k: v for k, v in os.environ.items() if k not in (*UNSET, "PORT")}
    environ.update(DATA_DIR=str(data_dir), **env)
    return subprocess.run(
        [CLI, *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=90
    )


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """Outside pytest's folders (see tests/ops/test_make_run.py: the embedded PostgreSQL's user
    must reach it)."""
    path = Path(tempfile.mkdtemp(prefix="cpn-dev-stack-"))
    yield path
    for process in processes_of(path):
        with contextlib.suppress(psutil.Error):
            process.kill()
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_commands_in_another_terminal_find_the_running_stack(run_dir: Path) -> None:
    data_dir = run_dir / "data"
    stack_file = data_dir / "stack.json"
    dev = DevRun(data_dir, run_dir / "dev.log")
    try:
        dev.wait_until_ready()
        mode = stat.S_IMODE(stack_file.stat().st_mode)
        secret = json.loads(stack_file.read_text())["webhook_secret"]

        sent = another_terminal(
            data_dir, "send", "user.created", "--onboarding", "--set", "data.first_name=Bob",
            "--wait",
        )  # fmt: skip
        session = another_terminal(
            data_dir, "send", "session.created", "--user-id", _clerk_user(sent.stdout), "--wait"
        )
        listed = another_terminal(data_dir, "--verbose", "events", "list")
        svix_id = sent.stdout.split("svix-id=", 1)[1].split()[0]
        shown = another_terminal(data_dir, "events", "show", svix_id, "--payload")
        explicit = another_terminal(
            data_dir, "-v", "events", "list", DATABASE_URL=f"postgresql://127.0.0.1:{free_port()}/x"
        )
        dev.ctrl_c()
    finally:
        dev.kill()
    after_stop = another_terminal(data_dir, "events", "list")

    assert mode == 0o600
    assert secret in dev.output  # the secret make run printed is the one the file holds
    assert sent.returncode == 0, sent.stdout + sent.stderr
    lines = sent.stdout.splitlines()
    assert lines[0].startswith(f"POST http://localhost:{dev.port}/webhooks/clerk svix-id=msg_")
    assert lines[1].startswith("clerk user: user_")
    assert lines[2].startswith('200 {"status":"accepted"')
    assert lines[3] == "processed"
    assert lines[4].startswith("user: ")
    assert lines[4].endswith(f"({_clerk_user(sent.stdout)})")
    assert lines[5].startswith("onboarding migration ")
    assert lines[5].endswith(": completed")
    assert '"first_name": "Bob"' in shown.stdout  # --set data.first_name=Bob

    assert session.returncode == 0, session.stdout + session.stderr
    assert "  session: sess_" in session.stdout
    assert "\nprocessed\n" in session.stdout
    assert "session: " in session.stdout.splitlines()[-2]
    assert session.stdout.splitlines()[-2].endswith(", active)")

    assert listed.returncode == 0, listed.stderr
    assert f"from make run (pid {dev.process.pid}, {stack_file})" in listed.stderr
    assert "user.created" in listed.stdout
    assert "session.created" in listed.stdout
    assert listed.stdout.endswith("2 event(s)\n")

    assert explicit.returncode == 1
    assert "(from environment)" in explicit.stderr
    assert "does not answer (Connection refused)" in explicit.stderr

    assert not stack_file.exists()
    assert after_stop.returncode == 1
    assert after_stop.stderr == "Error: DATABASE_URL is not set (make run starts an embedded one)\n"


def test_a_stack_file_left_by_a_killed_run_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "pid": gone.pid,
                "database_url": "postgresql+psycopg://127.0.0.1:1/cpn",
                "redis_url": "redis://127.0.0.1:1/0",
                "webhook_secret": "whsec_c3RhbGU=",
                "webhook_url": "http://localhost:1/webhooks/clerk",
            }
        )
    )

    result = another_terminal(tmp_path, "-v", "events", "list")

    assert result.returncode == 1
    assert "database: (DATABASE_URL not set) (from unset)" in result.stderr
    assert result.stderr.endswith(
        "Error: DATABASE_URL is not set (make run starts an embedded one)\n"
    )


def _clerk_user(output: str) -> str:
    line = next(line for line in output.splitlines() if line.startswith("clerk user: "))
    return line.removeprefix("clerk user: ").split()[0]


@pytest.mark.slow
def test_the_readmes_walk_from_a_fresh_terminal_with_a_fake_clerk(run_dir: Path) -> None:
    """README "try it": make run -> send --wait -> events list -> clerk backfill, each in a
    terminal where no variable is set."""
    data_dir = run_dir / "data"
    dev = DevRun(data_dir, run_dir / "dev.log", "--fake-clerk", "25")
    try:
        dev.wait_until_ready()
        sent = another_terminal(data_dir, "send", "user.created", "--wait")
        listed = another_terminal(data_dir, "events", "list")
        backfilled = another_terminal(data_dir, "clerk", "backfill")
        status = another_terminal(data_dir, "clerk", "status")
        dev.ctrl_c()
    finally:
        dev.kill()

    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "\nprocessed\n" in sent.stdout
    assert listed.stdout.endswith("1 event(s)\n"), listed.stdout + listed.stderr
    assert backfilled.returncode == 0, backfilled.stdout + backfilled.stderr
    assert "backfill: 25 users in 1 page\n" in backfilled.stdout
    assert "created 25, updated 0" in backfilled.stdout
    assert status.stdout.startswith("backfill: started ")
    assert "sk_test_" not in backfilled.stdout + backfilled.stderr + status.stdout
