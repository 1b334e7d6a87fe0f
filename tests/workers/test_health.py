"""The orchestrator's healthchecks (docker-compose.yml): `cpn-sync worker --healthcheck` and
`cpn-sync beat --healthcheck`, run as the compose file runs them, against real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.worker_process import WorkerProcess
from tests.workers.conftest import running
from workers.core.health import BEAT_STALE_AFTER_SECONDS, HEARTBEAT_FILE

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "cpn-sync")


def healthcheck(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, command, "--healthcheck"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_worker_healthcheck_follows_its_own_worker() -> None:
    with running(WorkerProcess(concurrency=1)):
        alive = healthcheck("worker")
    assert (alive.returncode, alive.stdout.strip()) == (0, "worker answers")
    gone = healthcheck("worker")
    assert gone.returncode == 1
    assert "does not answer" in gone.stderr
    assert "Traceback" not in gone.stderr


def test_beat_healthcheck_follows_its_ticks(tmp_path: Path) -> None:
    data_dir = tmp_path / "beat"
    assert healthcheck("beat", DATA_DIR=str(data_dir)).returncode == 1  # never ran
    with running(WorkerProcess(command="beat", extra_env={"DATA_DIR": str(data_dir)})):
        deadline = time.monotonic() + 30
        while not (data_dir / HEARTBEAT_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = healthcheck("beat", DATA_DIR=str(data_dir))
    assert (alive.returncode, alive.stdout.strip()) == (0, "beat ticks")
    # A beat that stopped ticking: its heartbeat ages past the limit.
    stale = time.time() - BEAT_STALE_AFTER_SECONDS - 1
    os.utime(data_dir / HEARTBEAT_FILE, (stale, stale))
    hung = healthcheck("beat", DATA_DIR=str(data_dir))
    assert hung.returncode == 1
    assert "has not ticked recently" in hung.stderr
