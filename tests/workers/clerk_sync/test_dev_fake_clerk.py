"""`cpn-sync dev --fake-clerk N`: the stack runs against a fake Clerk of N generated users, and
its processes are pointed at it (a worker's backfill reads it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cpn_sync.task_contract import CLERK_BACKFILL
from tests.workers.clerk_sync.conftest import stored_users

CLI = str(Path(sys.executable).parent / "cpn-sync")


@pytest.mark.slow
def test_a_worker_of_the_dev_stack_backfills_from_the_fake(engine: Engine) -> None:
    env = dict(os.environ, WORKER_CONCURRENCY="1", LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    env.pop("CLERK_SECRET_KEY", None)
    log = Path(tempfile.mkstemp(prefix="cpn-dev-", suffix=".log")[1])
    with log.open("wb") as out:
        dev = subprocess.Popen(
            [CLI, "dev", "--only", "worker", "--fake-clerk", "40"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while "ready." not in log.read_text(errors="replace"):
            assert dev.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.3)
        announced = re.search(
            r"fake Clerk API: (http://\S+) \(40 generated users\)", log.read_text()
        )
        assert announced, log.read_text()

        from workers.core.celery_app import app

        app.send_task(CLERK_BACKFILL, ignore_result=True)
        while len(stored_users(engine)) < 40:
            assert time.monotonic() < deadline + 60, log.read_text(errors="replace")[-3000:]
            time.sleep(0.3)
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=60)
        log.unlink(missing_ok=True)
    assert len(stored_users(engine)) == 40
