"""Two `cpn-sync beat` processes at once: each scheduled job still runs once per tick."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from pathlib import Path

import pytest
import redis

from cpn_sync.task_contract import EXPIRE_SESSIONS, REDACT_PAYLOADS, SWEEP_INBOX
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running

pytestmark = pytest.mark.slow

INTERVAL = 3.0
JOBS = (SWEEP_INBOX, EXPIRE_SESSIONS, REDACT_PAYLOADS)


def job_lines(log: str) -> list[dict[str, object]]:
    lines = []
    for line in log.splitlines():
        if line.startswith("{") and '"schedule.' in line:
            lines.append(json.loads(line))
    return lines


def runs(log: str) -> dict[str, int]:
    counts = dict.fromkeys(JOBS, 0)
    for line in job_lines(log):
        if line["event"] == "schedule.ran" and line["job"] in counts:
            counts[str(line["job"])] += 1
    return counts


def test_two_beats_each_job_runs_once_per_tick(tmp_path: Path, redis_url: str) -> None:
    every_three_seconds = {
        "SWEEP_INTERVAL_SECONDS": str(INTERVAL),
        "SESSION_EXPIRY_INTERVAL_SECONDS": str(INTERVAL),
        "PAYLOAD_REDACTION_INTERVAL_SECONDS": str(INTERVAL),
    }
    worker = WorkerProcess(concurrency=2, queues="maintenance", extra_env=every_three_seconds)
    beats = [
        WorkerProcess(
            command="beat", extra_env={**every_three_seconds, "DATA_DIR": str(tmp_path / name)}
        )
        for name in ("beat-a", "beat-b")
    ]
    with running(worker), running(beats[0]), running(beats[1]):
        # At least three runs of every job (about five ticks on a quiet machine; a loaded one
        # starts the processes later): the assertions below do not depend on timing.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and min(runs(worker.log).values()) < 4:
            time.sleep(0.5)
        for beat in beats:
            beat.stop()
        queue = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        while queue.llen("maintenance") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # the last message taken finishes
        lines = job_lines(worker.log)

    for job in JOBS:
        ran = [
            dt.datetime.fromisoformat(str(line["timestamp"]))
            for line in lines
            if line["event"] == "schedule.ran" and line["job"] == job
        ]
        skipped = [
            line for line in lines if line["event"] == "schedule.skipped" and line["job"] == job
        ]
        assert len(ran) >= 3, (job, lines)
        # Both beats sent every tick: each tick's second copy was refused.
        assert len(skipped) >= len(ran) - 1, (job, len(ran), len(skipped))
        gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(ran)]
        # No tick ran twice: runs are a tick apart (the guard allows 90 % of it, 2.7 s).
        assert min(gaps) >= INTERVAL * 0.75, (job, gaps)
