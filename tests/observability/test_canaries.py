"""The canaries: beat sends one to each queue, a real worker runs them, and the web's `/metrics`
shows how long ago each queue's canary ran."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis
from celery import Celery

from cpn_sync.settings import Settings, get_settings
from cpn_sync.task_contract import QUEUES
from tests.observability.conftest import Scrape, is_finite, worker_env
from tests.webhooks.conftest import running_app
from tests.worker_process import WorkerProcess
from tests.workers.conftest import running
from workers.app import beat_schedule

CANARY_AGE = "cpn_canary_age_seconds"
INTERVAL = 1.5
ALERT_AGE = 3 * INTERVAL  # the README's suggested alert threshold


def test_beat_sends_a_canary_to_each_queue_expiring_after_one_interval() -> None:
    from workers.app import app

    schedule = beat_schedule(get_settings().model_copy(update={"canary_interval_seconds": 42}))
    canaries = {name: entry for name, entry in schedule.items() if name.endswith(".canary")}
    routed = {app.amqp.router.route({}, name)["queue"].name: name for name in canaries}
    assert sorted(routed) == sorted(QUEUES)
    for name, entry in canaries.items():
        assert name in app.tasks
        assert (entry["schedule"], entry["options"]["expires"]) == (42, 42)


def ages(found: Scrape) -> dict[str, float | None]:
    return {queue: found.value(CANARY_AGE, queue=queue) for queue in QUEUES}


async def poll_ages(
    read: Callable[[], Awaitable[Scrape]],
    condition: Callable[[dict[str, float | None]], bool],
    timeout: float,
    what: str,
) -> dict[str, float | None]:
    deadline = time.monotonic() + timeout
    while True:
        found = ages(await read())
        if condition(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}; canary ages: {found}")
        await asyncio.sleep(0.3)


@pytest.mark.slow
@pytest.mark.anyio
async def test_consumed_canaries_stay_young_and_an_unconsumed_queue_ages(
    settings: Settings, broker: redis.Redis, publisher: Celery, tmp_path: Path
) -> None:
    env = worker_env(settings, CANARY_INTERVAL_SECONDS=str(INTERVAL), DATA_DIR=str(tmp_path))
    async with running_app(settings) as client:

        async def read() -> Scrape:
            response = await client.get("/metrics")
            assert response.status_code == 200
            return Scrape.parse(response.text)

        # Nothing has ever consumed a canary: every age is +Inf, so the alert fires.
        assert ages(await read()) == dict.fromkeys(QUEUES, math.inf)

        worker = WorkerProcess(concurrency=1, extra_env=env)
        beat = WorkerProcess(command="beat", extra_env=env)
        with running(worker), running(beat):
            await poll_ages(
                read,
                lambda found: all(is_finite(age) and age < ALERT_AGE for age in found.values()),
                60,
                "every queue's canary consumed",
            )

            # The worker stops consuming `maintenance` (as if its only worker were gone).
            replies = publisher.control.cancel_consumer("maintenance", reply=True, timeout=10)
            assert replies, "the worker did not answer the remote control"
            first = await poll_ages(
                read,
                lambda found: (found["maintenance"] or 0) > ALERT_AGE,
                60,
                "the maintenance canary older than the alert threshold",
            )
            # ... while the consumed queues keep a fresh canary, and maintenance's pile up.
            await poll_ages(
                read,
                lambda found: (
                    (found["maintenance"] or 0) > (first["maintenance"] or 0) + INTERVAL
                    and all(is_finite(found[queue]) for queue in ("webhooks", "cpn"))
                    and all((found[queue] or 0) < ALERT_AGE for queue in ("webhooks", "cpn"))
                ),
                60,
                "maintenance's canary keeps ageing while the others stay young",
            )
            queued = (await read()).value("cpn_queue_messages", queue="maintenance")

    assert queued is not None
    assert queued >= 1
