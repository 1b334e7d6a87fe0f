"""The scheduled jobs: beat sends `clerk.sync_recent` and `clerk.reconcile` only with a key,
and a real beat and worker bring in a user whose webhook never came."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from celery.schedules import crontab
from sqlalchemy import Engine

from cpn_sync.fake_clerk import FakeClerk, RunningFake
from cpn_sync.settings import Settings
from cpn_sync.task_contract import CLERK_RECONCILE, CLERK_SYNC_RECENT, TASK_QUEUES
from tests.worker_process import WorkerProcess
from tests.workers.clerk_sync.conftest import KEY, expected_users, stored_users
from tests.workers.conftest import running
from workers.app import beat_schedule


def test_without_a_key_neither_job_is_scheduled() -> None:
    schedule = beat_schedule(Settings(clerk_secret_key=None))

    assert CLERK_SYNC_RECENT not in schedule
    assert CLERK_RECONCILE not in schedule


def test_with_a_key_both_are_scheduled_on_the_maintenance_queue() -> None:
    schedule = beat_schedule(
        Settings(clerk_secret_key=KEY, clerk_sync_interval_seconds=120, clerk_reconcile_hour=5)
    )

    assert schedule[CLERK_SYNC_RECENT]["schedule"] == 120
    nightly = schedule[CLERK_RECONCILE]["schedule"]
    assert isinstance(nightly, crontab)
    assert nightly.hour == {5}  # type: ignore[attr-defined]  # set by crontab.__init__
    assert TASK_QUEUES[CLERK_SYNC_RECENT] == TASK_QUEUES[CLERK_RECONCILE] == "maintenance"


@pytest.mark.slow
def test_beat_and_a_worker_bring_in_a_user_that_never_had_a_webhook(
    engine: Engine, fake: FakeClerk, served: RunningFake, tmp_path: Path
) -> None:
    signed_up = sorted(fake.users)[0]
    fake.update_user(signed_up, first_name="Recent")  # changed now; the others long ago
    env = {
        "CLERK_SECRET_KEY": KEY,
        "CLERK_API_URL": served.api_url,
        "CLERK_SYNC_INTERVAL_SECONDS": "10",
        "DATA_DIR": str(tmp_path),
    }
    worker = WorkerProcess(concurrency=1, queues="maintenance", extra_env=env)
    beat = WorkerProcess(command="beat", extra_env=env)
    with running(worker), running(beat):
        deadline = time.monotonic() + 90
        ran: list[object] = []
        while signed_up not in stored_users(engine) or CLERK_SYNC_RECENT not in ran:
            assert time.monotonic() < deadline, worker.log[-3000:]
            time.sleep(0.5)
            ran = [line["job"] for line in worker.events("schedule.ran")]

    stored = stored_users(engine)
    assert stored[signed_up] == expected_users(fake)[signed_up]
    assert len(stored) == 1  # the first run looks back one hour, not at every user
